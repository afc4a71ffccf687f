"""The Streamlit search UI's building blocks (``app.py`` only calls ``jasper_rag.ui.page.render``).

Pure helpers, testable without Streamlit: ``highlight`` (snippets with the query terms marked),
``cards`` (result cards as HTML), ``safe`` (user text made inert, errors as one masked line),
``uploads`` (safe saving of uploaded files and what the uploads folder keeps), ``overview`` (what
the About tab shows). ``resources`` holds the cached model + index; ``page`` draws the tabs.
"""
