"""trio-s3rpc: a Goridge RPC server that gives RoadRunner PHP applications S3 storage.

The package is layered: ``goridge`` (sans-IO wire format) -> ``rpc`` (server,
method registry) -> ``storage`` (what each ``s3.*`` method does) -> ``s3``
(signing, transport, multipart) -> the storage service.
"""

__version__ = "0.1.0"
