"""PDFs as the service sets them: one A4 document with DejaVu Sans embedded (document.py, fpdf2, imported on
first use) and what pages import to render and stream one (output.py). Shared infrastructure: the dossier and
the letters (service/dossier) and the knowledge feature's printable plans and articles use it; it knows no
feature."""
