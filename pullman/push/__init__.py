"""Layer 2: pushing a model of the local Ollama store into an OCI registry (``pullman push``).

- :mod:`pullman.push.run`: the whole push (blobs, then the manifest, byte-exact);
- :mod:`pullman.push.blob`: one blob (skip, mount, resumable chunked upload);
- :mod:`pullman.push.state`: unfinished uploads and mount sources, kept between runs;
- :mod:`pullman.push.local`: the model as the store holds it, and the docker credentials.

The wire is :mod:`pullman.net.registry_client`; the pure parts are in :mod:`pullman.core`
(``push_target``, ``uploads``, ``registry_auth``).
"""
