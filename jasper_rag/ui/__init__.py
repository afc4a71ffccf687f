"""The Streamlit search UI's building blocks (``app.py`` only calls ``jasper_rag.ui.page.render``).

Pure helpers, testable without Streamlit: ``highlight`` (snippets with the query terms marked),
``cards`` (result cards as HTML), ``uploads`` (safe saving of uploaded files), ``overview`` (what
the About tab shows). ``resources`` holds the cached model + index; ``page`` draws the tabs.
"""
