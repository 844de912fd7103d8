"""The package version, in one place (the façade re-exports it as ``gradverify.__version__``)."""

__version__ = "0.1.0"
