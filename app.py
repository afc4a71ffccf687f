"""The search UI: `make app` (or `streamlit run app.py`). Everything it shows is drawn by jasper_rag.ui."""

from jasper_rag.ui.page import render

render()
