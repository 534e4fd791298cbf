"""``pullman serve``: this machine's stores, read-only, for the LAN's stock clients.

An OCI distribution registry (the read API) over the Ollama store, for ``ollama pull`` and for
registries that pull through from it, and a Hugging Face endpoint over the HF cache, for
``HF_ENDPOINT`` clients. Handlers ask a :class:`~pullman.serve.catalog.Catalog` (the seam a
pull-through plugs into); :mod:`pullman.serve.local` is the one over the stores;
:mod:`pullman.serve.guard` says who may ask and bounds each connection; :mod:`pullman.serve.app`
builds and runs the aiohttp server.
"""
