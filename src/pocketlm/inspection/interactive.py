"""bertviz's interactive attention views as self-contained HTML files that work offline.

bertviz's ``head_view`` / ``model_view`` (``html_action="return"``) produce HTML
that fetches require.js, d3 and jQuery from a CDN. Offline, or for a student
behind a strict network, that page stays blank. Here the three libraries
(shipped in ``js/``, see its README) are inlined, the CDN paths are taken out
of the require.js configuration, and the modules are declared up front, so the
page makes no request at all.
"""

from __future__ import annotations

import re
from pathlib import Path

from pocketlm.errors import InvalidParameter
from pocketlm.files import atomic_path

JS = Path(__file__).resolve().parent / "js"
VIEWS = ("head", "model")
_CDN_SCRIPT = re.compile(r'<script src="https?://[^"]*require[^"]*"></script>')
_CDN_PATH = re.compile(r"""(d3|jquery)\s*:\s*['"]https?://[^'"]*['"]""")
_VIS_SCRIPT = '<script type="text/javascript">'


def bertviz_html(amap, view: str = "head") -> str:
    """The bertviz view of an attention map (every layer and head it holds) as one offline HTML page."""
    import torch
    from bertviz import head_view, model_view

    if view not in VIEWS:
        raise InvalidParameter("view", f"must be one of {', '.join(VIEWS)}, got {view!r}")
    # bertviz numbers layers by their place in the list it gets: give it every layer up to the last one
    # chosen (the others empty, never shown) so that its menu shows the model's own layer numbers.
    empty = torch.zeros((1, *amap.weights.shape[1:]))
    attention = [empty] * (max(amap.layers) + 1)
    for i, layer in enumerate(amap.layers):
        attention[layer] = torch.from_numpy(amap.weights[i][None])  # [1, heads, T, T]
    render = head_view if view == "head" else model_view
    page = render(attention, list(amap.tokens), include_layers=list(amap.layers), html_action="return").data
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>attention</title></head><body>\n'
        + offline(page)
        + "\n</body></html>\n"
    )


def offline(page: str) -> str:
    """bertviz's HTML with its CDN libraries inlined and no URL left."""
    if not _CDN_SCRIPT.search(page) or _VIS_SCRIPT not in page:
        raise RuntimeError(
            "bertviz's HTML changed shape (no require.js script tag or view script); pocketlm needs bertviz 1.4"
        )
    libraries = "\n".join(f"<script>\n{_read(name)}\n</script>" for name in ("d3.min.js", "jquery.min.js"))
    # d3 and jQuery load first, as globals (d3's anonymous define() would upset require.js), then require.js,
    # then they are declared as the modules the view asks for, so require.js never fetches them.
    declare = (
        "<script>\ndefine('d3', [], function () { return window.d3; });\n"
        "define('jquery', [], function () { return window.jQuery; });\n</script>"
    )
    page = _CDN_SCRIPT.sub(
        lambda _: f"{libraries}\n<script>\n{_read('require.js')}\n</script>\n{declare}", page, count=1
    )
    head, vis = page.split(_VIS_SCRIPT, 1)
    body, tail = vis.rsplit("</script>", 1)
    body = _CDN_PATH.sub(lambda m: f"{m.group(1)}: 'inlined-{m.group(1)}'", body)
    body = body.replace("</", "<\\/").replace("<!--", "<\\!--")  # token text cannot close the script
    return _no_urls(head + _VIS_SCRIPT + body + "</script>" + tail)


def _read(name: str) -> str:
    return (JS / name).read_text(encoding="utf-8")


def _no_urls(text: str) -> str:
    """Write ``http://`` as ``http:\\/\\/``: the same string to JavaScript, and no URL to anything that scans the page.

    What is left are licence headers, comments and XML namespace names (d3's SVG
    namespace), none of which is fetched.
    """
    return re.sub(r"(https?):(//)", r"\1:\\/\\/", text)


def write_html(html: str, path) -> Path:
    path = Path(path)
    with atomic_path(path) as partial:
        partial.write_text(html, encoding="utf-8")
        partial.chmod(0o644)
    return path
