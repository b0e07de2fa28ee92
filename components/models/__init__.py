"""Model families (see ``registry`` for the table, ``builder.build_model`` to build one).

Kept free of imports so that reading the registry does not load TensorFlow.
"""
