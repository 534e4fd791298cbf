"""Web URLs users paste from their browser, as the refs they are.

- ``https://huggingface.co/org/repo`` (and ``/blob/<rev>/<path>``, ``/resolve/<rev>/<path>``,
  ``/tree/<rev>/<dir>``, ``/datasets/...``), also on ``hf.co`` and on ``HF_ENDPOINT``'s host:
  the Hub repo, revision and path, parsed by huggingface_hub's own ``parse_hf_uri``;
- ``https://ollama.com/library/<model>[:tag]`` and ``https://ollama.com/<user>/<model>``: the
  Ollama name.

Any other URL stays a URL (a file to download as it is), and so does any URL given with ``-o``
or ``--sha256``: that asks for the plain file, as curl or wget would fetch it.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from pullman.core.refs import Ref, UrlRef, parse_hf, parse_ollama
from pullman.errors import RefError

HUB_HOSTS = frozenset({"huggingface.co", "www.huggingface.co", "hf.co", "hub-ci.huggingface.co"})
OLLAMA_HOSTS = frozenset({"ollama.com", "www.ollama.com"})


def hub_hosts() -> frozenset[str]:
    from pullman.sources.hf import endpoint

    return HUB_HOSTS | {(urlsplit(endpoint()).hostname or "").lower()}


def refine(ref: Ref, *, insecure: bool = False) -> Ref:
    """``ref``, or the Hub or Ollama ref a pasted web URL stands for."""
    if not isinstance(ref, UrlRef):
        return ref
    host = (urlsplit(ref.url).hostname or "").lower()
    if host in OLLAMA_HOSTS:
        return _ollama(ref.url, insecure)
    if host in hub_hosts() and _hub_page(ref.url):
        return _hub(ref.url)
    return ref


def _hub_page(url: str) -> bool:
    """Whether the URL is a repo page or a file/folder view (not /api, /docs, a bare host)."""
    parts = [p for p in urlsplit(url).path.split("/") if p]
    if parts and parts[0] in ("datasets", "models"):
        parts = parts[1:]
    return len(parts) >= 2 and parts[0] not in ("api", "docs", "blog", "settings")


def _hub(url: str) -> Ref:
    from huggingface_hub import parse_hf_uri
    from huggingface_hub.errors import HfUriError

    from pullman.sources.hf import endpoint

    try:
        uri = parse_hf_uri(url, endpoint=endpoint())
    except (HfUriError, ValueError) as exc:
        raise RefError(f"{url!r} is not a Hugging Face repo or file page", why=str(exc)) from None
    if uri.type not in ("model", "dataset"):
        raise RefError(f"{url!r} is a {uri.type}, not a model or dataset repo")
    prefix = "datasets/" if uri.type == "dataset" else ""
    text = f"hf://{prefix}{uri.id}"
    if uri.revision is not None:
        text += f"@{uri.revision}"
    if uri.path_in_repo:
        text += f"/{uri.path_in_repo}"
    return parse_hf(text)  # our own checks on what the URL named


def _ollama(url: str, insecure: bool) -> Ref:
    parts = [unquote(p) for p in urlsplit(url).path.split("/") if p]
    if len(parts) != 2:
        raise RefError(
            f"{url!r} is not an Ollama model page",
            hint="paste a model page, e.g. https://ollama.com/library/llama3.2",
        )
    namespace, model = parts
    return parse_ollama(
        model if namespace == "library" else f"{namespace}/{model}", insecure=insecure
    )
