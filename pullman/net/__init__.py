"""Layer 1: the only package that imports the HTTP clients (httpx2 / httpcore2; httpx for ollama).

Submodules are imported explicitly (``from pullman.net import client``), so that importing one
light module (``retry``) does not load the HTTP stack.
"""
