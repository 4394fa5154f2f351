"""Benchmarks of trio-s3rpc against its peers: ``python -m benchmarks run|memory|checksums``.

The harness starts a storage service (the embedded SeaweedFS, unless an
endpoint is given), runs the server as a separate process, drives it from
several client processes, runs boto3 and two direct-to-S3 floors against the
same service at the same concurrency, and writes a table, a JSON file and a
chart of the ratios. See ``benchmarks/README.md``.
"""
