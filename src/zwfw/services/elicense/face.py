"""The licence face (证照照面) as PDF, with a QR code pointing at the public verify URL.

GB/T 36905 files are OFD; the face here is the human-readable rendering a holder downloads.
Chinese text uses the Adobe CID font STSong-Light that every PDF reader ships, so no font file
is embedded.
"""

from __future__ import annotations

import io
from typing import Any

from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib.pagesizes import A5, landscape
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

FONT = "STSong-Light"
pdfmetrics.registerFont(UnicodeCIDFont(FONT))

_FIELDS = (
    ("licence_number", "证照编号"),
    ("holder_name", "持证主体"),
    ("holder_code", "持证主体代码"),
    ("issuer_name", "颁证单位"),
    ("issue_date", "颁证日期"),
    ("valid_from", "有效期起始"),
    ("valid_until", "有效期截止"),
    ("jurisdiction", "管辖区域"),
)


def render_face(document: dict[str, Any], verify_url: str) -> bytes:
    """PDF bytes of the licence face for ``document`` (the sealed licence document)."""
    buffer = io.BytesIO()
    width, height = landscape(A5)
    pdf = canvas.Canvas(buffer, pagesize=(width, height))
    pdf.setTitle(f"{document['type_name']} {document['identifier']}")
    pdf.setAuthor(document["issuer_name"])
    pdf.setFont(FONT, 20)
    pdf.drawCentredString(width / 2, height - 22 * mm, document["type_name"])
    y = height - 38 * mm
    for key, label in _FIELDS:
        value = document.get(key) or ("长期" if key == "valid_until" else "")
        pdf.setFont(FONT, 11)
        pdf.drawString(18 * mm, y, f"{label}：{value}")
        y -= 8 * mm
    pdf.setFont("Helvetica", 8)
    pdf.drawString(18 * mm, 14 * mm, f"Identifier: {document['identifier']}")
    pdf.drawString(18 * mm, 9 * mm, f"Verify: {verify_url}")
    qr = QrCodeWidget(verify_url, barLevel="M")
    x0, y0, x1, y1 = qr.getBounds()
    size = 38 * mm
    drawing = Drawing(size, size, transform=[size / (x1 - x0), 0, 0, size / (y1 - y0), 0, 0])
    drawing.add(qr)
    drawing.drawOn(pdf, width - size - 14 * mm, 24 * mm)
    pdf.setFont(FONT, 8)
    pdf.drawCentredString(width - size / 2 - 14 * mm, 20 * mm, "扫码核验")
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
