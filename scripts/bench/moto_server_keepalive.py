"""moto's S3/EC2 app served by waitress, which keeps connections alive.

Stock `moto_server` runs werkzeug's development server, which answers
every request with `Connection: close` on purpose, so each request opens
a new TCP connection and a new server thread. S3 keeps connections
alive; this launcher lets the benchmark measure the tools against the
same moto without that cost (`MOTO_SERVER=keepalive scripts/bench-files.sh`).
The tests keep the stock server.

    python moto_server_keepalive.py -H 127.0.0.1 -p PORT
"""

import argparse
import os

import waitress
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

parser = argparse.ArgumentParser()
parser.add_argument("-H", "--host", default="127.0.0.1")
parser.add_argument("-p", "--port", type=int, required=True)
args = parser.parse_args()
os.environ.setdefault("MOTO_PORT", str(args.port))
waitress.serve(
    DomainDispatcherApplication(create_backend_app),
    host=args.host,
    port=args.port,
    threads=16,
    connection_limit=1000,
    channel_timeout=120,
    _quiet=True,
)
