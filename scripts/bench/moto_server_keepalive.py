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
import sys

import waitress
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

parser = argparse.ArgumentParser()
parser.add_argument("-H", "--host", default="127.0.0.1")
parser.add_argument("-p", "--port", type=int, required=True)
args = parser.parse_args()
os.environ.setdefault("MOTO_PORT", str(args.port))


def access_log(app):
    """One line a request on stderr, in werkzeug's form ('"PUT /b/k
    HTTP/1.1" 200'), which the bench counts for the runs that bypass
    the lab (row 3)."""

    def logged(environ, start_response):
        def start(status, headers, exc_info=None):
            target = environ.get("PATH_INFO", "")
            if environ.get("QUERY_STRING"):
                target += "?" + environ["QUERY_STRING"]
            sys.stderr.write(
                '"%s %s HTTP/1.1" %s\n' % (environ["REQUEST_METHOD"], target, status[:3])
            )
            sys.stderr.flush()
            return start_response(status, headers, exc_info)

        return app(environ, start)

    return logged


waitress.serve(
    access_log(DomainDispatcherApplication(create_backend_app)),
    host=args.host,
    port=args.port,
    threads=16,
    connection_limit=1000,
    channel_timeout=120,
    _quiet=True,
)
