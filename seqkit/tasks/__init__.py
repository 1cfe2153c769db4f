"""One module per task, each with the same parts (the contract in seqkit/lifecycle.py).

Importing a task module loads neither TensorFlow nor Keras: its Config, Source, reader,
Preprocessor and decoding are pure Python, and its model code imports Keras when it runs.
"""
