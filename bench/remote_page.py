"""A stand-in for pose_viewer's page open in a browser on another computer: a websocket client that connects as
viser's browser client does (subprotocol `viser-v<version>`, then the page's camera: viser counts a client as
connected from its first camera message) and receives everything the page would be sent, without decoding or
drawing it. On the robot it costs what a remote browser costs: the viewer's own work and the sending; the
drawing happens elsewhere.

    python -m bench.remote_page ws://127.0.0.1:8090      # until interrupted; prints messages and bytes received
"""

from __future__ import annotations

import contextlib
import signal
import sys

import msgspec
import viser
from viser._messages import ViewerCameraMessage
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

# What a 960x540 page reports before anyone touches it: pose_viewer's initial camera (at the optical centre,
# looking down +z, y down).
PAGE_CAMERA = ViewerCameraMessage(
    wxyz=(1.0, 0.0, 0.0, 0.0), position=(0.0, 0.0, 0.0), fov=1.0, near=0.01, far=1000.0, image_height=540,
    image_width=960, look_at=(0.0, 0.0, 2.0), up_direction=(0.0, -1.0, 0.0),
)  # fmt: skip


@contextlib.contextmanager
def open_page(url: str):
    """A websocket to the viewer at `url` that the viewer counts as an open page (handshake and camera sent)."""
    with connect(url, subprotocols=[f"viser-v{viser.__version__}"], max_size=None, compression=None) as socket:
        socket.send(msgspec.msgpack.encode(PAGE_CAMERA.as_serializable_dict()))
        yield socket


def read_page(url: str) -> tuple[int, int]:
    """Receive messages from the viewer at `url` until the connection closes or SIGTERM -> (messages, bytes)."""
    messages = received = 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        with open_page(url) as socket:
            while True:
                received += len(socket.recv())
                messages += 1
    except (ConnectionClosed, KeyboardInterrupt, SystemExit):
        pass
    return messages, received


if __name__ == "__main__":
    count, size = read_page(sys.argv[1])
    print(f"remote_page: {count} messages, {size / 1e6:.1f} MB", flush=True)
