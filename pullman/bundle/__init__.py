"""Bundles: models carried to a machine without a network, as one plain tar.

``pullman export`` writes the files of Ollama models and Hugging Face snapshots, exactly as
their stores hold them, into a tar that ``tar`` and ``sha256sum -c`` read
(:mod:`~pullman.bundle.format` says what is in it, and in which order); ``pullman import``
reads one from a file or a pipe, verifies every byte into the destination store's staging area,
and commits only once the whole bundle verified: blobs first, manifests, snapshot links and
refs last (:mod:`~pullman.bundle.importer`).

- :mod:`~pullman.bundle.format`: the header, its validation and the checksum list (pure);
- :mod:`~pullman.bundle.contents`: what a ref is in its store, as bundle files (export);
- :mod:`~pullman.bundle.export`: the tar, streamed to a file (renamed at the end) or stdout;
- :mod:`~pullman.bundle.tarread`: the strict, streaming reader of a bundle's members;
- :mod:`~pullman.bundle.targets`: the header's models as the layouts' plans (import);
- :mod:`~pullman.bundle.workspace`: an import's own staging files, and their cleanup;
- :mod:`~pullman.bundle.importer`: verify everything, then commit, or leave nothing.
"""
