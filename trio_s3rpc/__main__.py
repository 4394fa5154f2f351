"""``python -m trio_s3rpc`` runs the ``trio-s3rpc`` command."""

import sys

from trio_s3rpc.cli import main

sys.exit(main())
