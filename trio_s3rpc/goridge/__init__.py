"""The Goridge wire format, sans-IO: frames in :mod:`.frame`, argument codecs in :mod:`.codecs`.

This package performs no I/O and imports no async library, so the server, the
Python client, the tests and the fuzz targets all drive the same code by
feeding it bytes and taking frames and argument objects out.
"""
