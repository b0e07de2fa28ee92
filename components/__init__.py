"""TFX component code: the preprocessing_fn, the run_fn, model families, and custom components.

TFX imports these by dotted path (e.g. ``components.transform.preprocessing_fn``) from the
installed package, so no module file is packaged or pip-installed per component run.
"""
