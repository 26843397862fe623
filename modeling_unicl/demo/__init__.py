"""The browser demo: zero-shot classification of one image against free-text labels, for any UniCL folder.

    labels.py      the label box: parsing, duplicates, the prompt budget
    images.py      uploads -> RGB with a bounded decode (the package's to_rgb for every mode)
    classifier.py  DemoClassifier: the model loaded once, class matrices cached per (labels, template choice)
    model_info.py  what the page says the model is (trained on what, tiny, randomly initialised)
    examples.py    example images rendered from the package's animal silhouettes
    space.py       write_space: a Hugging Face Space folder for a model on the Hub
    app.py         the Gradio page and the /classify API endpoint: the only module that imports gradio

gradio is an optional extra (`pip install -e .[demo]`); nothing outside `app.py` imports it, and `import
modeling_unicl` never imports this room.
"""
