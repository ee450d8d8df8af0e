"""A token's code drawn as a QR code, by segno (pure Python: no imaging library).

Only the code is encoded, nothing around it (no URL, no prefix): whatever scanner a till
uses reads exactly the string that ``redeem`` takes. Byte mode, error correction M:
the 27-character codes fit a version 3 symbol either way, M survives a scuffed screen.
"""

from __future__ import annotations

import io

import segno

FORMATS = {"svg": "image/svg+xml", "png": "image/png"}
SCALE = {"svg": 8, "png": 8}  # pixels per module: a phone screen scans it at arm's length
BORDER = 4  # the quiet zone the QR standard asks for, in modules


def draw(code: str, kind: str) -> bytes:
    """``code`` as a QR code in ``kind`` (``svg`` or ``png``)."""
    symbol = segno.make(code, error="m", micro=False, boost_error=False)
    out = io.BytesIO()
    if kind == "svg":
        # A title for screen readers; the code itself is not written out in the image.
        symbol.save(out, kind="svg", scale=SCALE[kind], border=BORDER, title="QR code",
                    xmldecl=False)
    else:
        symbol.save(out, kind="png", scale=SCALE[kind], border=BORDER)
    return out.getvalue()
