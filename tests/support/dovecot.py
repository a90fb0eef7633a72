"""A real Dovecot IMAP server for the tests, started from a throwaway config in a temporary
folder: one passwd-file user, maildir storage, a plain listener and (by default) an implicit
TLS listener with a certificate from tests/support/certs.py, both on free loopback ports.

    with DovecotServer() as server:          # or the `dovecot` fixture: a fresh one per test
        uid = server.append("INBOX", raw)
        server.flags("INBOX", uid)           # frozenset({"\\Recent"}): still unseen
        server.stop(); server.start()        # an outage, on the same ports
        server.reset_uidvalidity("INBOX")    # what a rebuilt index looks like to a client
        with server.frozen(): ...            # every Dovecot process stopped: a hung server

Things Dovecot insists on, found the hard way:
- imap-login refuses to run as root and passwd-file refuses uid 0: as root, the login
  processes run as `dovenull`, the mail user is the `dovecot` account, and `first_valid_uid`
  is lowered to it (the default, 500, refuses system accounts: "Mail access for users with
  UID 110 not permitted").
- Those users must reach the maildir, so the folder comes from mkdtemp under the system temp
  dir (pytest's tmp_path sits below a 0700 directory) and is opened up to 0711.
- `ssl = yes` makes the plain listener offer STARTTLS (and `tls=False`, i.e. `ssl = no`, a
  server that offers none); a TLS-only listener is `ssl = yes` on the listener itself.
- Configuration blocks cannot be written on one line ("Garbage after '{'").
- Dovecot answers the TCP connect before auth is ready: readiness is the `* OK` greeting.
- A new UIDVALIDITY comes from deleting the folder's dovecot-uidlist and index files: the
  messages stay and get new UIDs under a UIDVALIDITY one higher than the last one handed out.
- Failed logins are delayed 2 s by default (`auth_failure_delay`): set to 0 here.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import pytest
from imapclient import IMAPClient

from tests.support.certs import Certs, make_certs

HOST = "127.0.0.1"
USER = "shop"
PASSWORD = "shop-imap-Pa55word"  # a throwaway test account
BINARY_CANDIDATES = ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot")
IMAP_HELPER = Path("/usr/lib/dovecot/imap")
INSTALL_HINT = "install it with `apt-get install dovecot-imapd` (.ci/run does in CI)"
START_TIMEOUT = 10.0
_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")

# Dovecot 2.3's capabilities after login, so a test can take one away (e.g. MOVE) and drive
# the code path for servers that lack it. The command itself keeps working: only the
# advertisement changes, which is all a well-behaved client looks at.
# fmt: off
DEFAULT_CAPABILITIES = (
    "IMAP4rev1", "SASL-IR", "LOGIN-REFERRALS", "ID", "ENABLE", "IDLE", "SORT", "SORT=DISPLAY",
    "THREAD=REFERENCES", "THREAD=REFS", "THREAD=ORDEREDSUBJECT", "MULTIAPPEND", "URL-PARTIAL",
    "CATENATE", "UNSELECT", "CHILDREN", "NAMESPACE", "UIDPLUS", "LIST-EXTENDED", "I18NLEVEL=1",
    "CONDSTORE", "QRESYNC", "ESEARCH", "ESORT", "SEARCHRES", "WITHIN", "CONTEXT=SEARCH",
    "LIST-STATUS", "BINARY", "MOVE", "SNIPPET=FUZZY", "PREVIEW=FUZZY", "PREVIEW", "STATUS=SIZE",
    "SAVEDATE", "LITERAL+", "NOTIFY",
)
# fmt: on


def dovecot_binary() -> str:
    """The dovecot executable; fails the test (never skips it) when it is missing."""
    found = shutil.which("dovecot") or next(
        (path for path in BINARY_CANDIDATES if os.access(path, os.X_OK)), None
    )
    if found is None:
        pytest.fail(f"Dovecot is not installed (no dovecot binary): {INSTALL_HINT}", pytrace=False)
    if not IMAP_HELPER.exists():
        pytest.fail(
            f"Dovecot's IMAP server is missing ({IMAP_HELPER}): {INSTALL_HINT}", pytrace=False
        )
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


class DovecotServer:
    """One Dovecot master process and its folder; see the module docstring."""

    def __init__(self, *, tls: bool = True, without_capabilities: Collection[str] = ()) -> None:
        self.binary = dovecot_binary()
        self.host = HOST
        self.user = USER
        self.password = PASSWORD
        self.tls = tls
        self.without_capabilities = {c.upper() for c in without_capabilities}
        self._accounts = _accounts()
        self.folder = Path(tempfile.mkdtemp(prefix="dripper-dovecot-"))
        try:
            self._prepare()
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise

    def _prepare(self) -> None:
        # The login and mail processes run as other users and must pass through here.
        self.folder.chmod(0o711)
        self.config_file = self.folder / "dovecot.conf"
        self.log_file = self.folder / "dovecot.log"
        self.output_file = self.folder / "dovecot.out"  # what `dovecot -F` itself prints
        self.users_file = self.folder / "users"
        self.mail_root = self.folder / "mail"
        self.port = free_port()
        self.tls_port: int | None = free_port() if self.tls else None
        self.certs: Certs | None = make_certs(self.folder / "certs") if self.tls else None
        self._process: subprocess.Popen[bytes] | None = None
        self._frozen = False
        self._started = False
        self.mail_root.mkdir()
        os.chown(self.mail_root, self._accounts.mail_uid, self._accounts.mail_gid)
        self.add_user(self.user, self.password)
        self.config_file.write_text(self._config())

    @property
    def ca_file(self) -> Path | None:
        """The CA that signed the server's certificate (for 127.0.0.1 and localhost)."""
        return self.certs.ca_file if self.certs else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # --- the process ------------------------------------------------------------------------

    def start(self) -> None:
        """Start Dovecot on this server's ports and wait for its greeting."""
        if self.running:
            return
        for _attempt in range(3):
            problem = self._launch()
            if problem is None:
                self._started = True
                return
            taken = "Address already in use" in self.logs()
            self.stop()
            if self._started or not taken:
                break
            # Another process took a port between free_port() and Dovecot binding it. Only
            # on the first start: a restart must come back where clients expect it.
            self.port = free_port()
            self.tls_port = free_port() if self.tls else None
            self.config_file.write_text(self._config())
        pytest.fail(f"Dovecot did not start: {problem}\n{self.logs()}", pytrace=False)

    def _launch(self) -> str | None:
        began = time.monotonic()
        with self.output_file.open("ab") as output:
            self._process = subprocess.Popen(
                [self.binary, "-F", "-c", str(self.config_file)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                # Its own process group, which stop() and frozen() signal as a whole.
                start_new_session=True,
            )
        return self._wait_ready(began + START_TIMEOUT)

    def stop(self) -> None:
        """Stop Dovecot, the processes of the group its master leads (see start); connections
        that clients hold are cut."""
        process, self._process = self._process, None
        if process is None:
            return
        if self._frozen:
            self._signal_group(process, signal.SIGCONT)
            self._frozen = False
        if process.poll() is None:
            # The whole group at once: SIGTERM to the master alone always takes a second
            # (it waits for its children), and even this way it sometimes sits for 1 or 6 s.
            # Then SIGKILL: maildir and dovecot-uidlist are written by rename, so a killed
            # Dovecot loses nothing it has acknowledged.
            self._signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                self._signal_group(process, signal.SIGKILL)
                process.wait(timeout=10)
        # A killed master leaves its pid file; were the pid reused, the next start would
        # refuse with "Dovecot is already running".
        (self.folder / "run" / "master.pid").unlink(missing_ok=True)
        # Children may outlive the master by a moment; the port is what clients see.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _accepts(self.host, self.port):
            time.sleep(0.02)

    def restart(self) -> None:
        self.stop()
        self.start()

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Every Dovecot process stopped (SIGSTOP) for the duration: the kernel still accepts
        connections, but nothing answers, as with a hung server."""
        process = self._process
        assert process is not None, "Dovecot is not running"
        assert self.running, "Dovecot is not running"
        self._signal_group(process, signal.SIGSTOP)
        self._frozen = True
        try:
            yield
        finally:
            if self._frozen:
                self._signal_group(process, signal.SIGCONT)
                self._frozen = False

    def close(self) -> None:
        """Stop Dovecot and remove its folder."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> DovecotServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def logs(self) -> str:
        """Dovecot's log and its own output, for failure messages."""
        parts = []
        for path in (self.output_file, self.log_file):
            if path.exists() and path.stat().st_size:
                parts.append(f"--- {path.name} ---\n{path.read_text(errors='replace')}")
        return "\n".join(parts) or "(Dovecot logged nothing)"

    # --- accounts and mailboxes ---------------------------------------------------------------

    def add_user(self, name: str, password: str) -> None:
        """Another account; Dovecot rereads the passwd-file when it changes."""
        home = self.mail_root / name
        line = (
            f"{name}:{{PLAIN}}{password}:{self._accounts.mail_uid}:{self._accounts.mail_gid}"
            f"::{home}::\n"
        )
        with self.users_file.open("a") as users:
            users.write(line)
        self.users_file.chmod(0o644)

    @contextlib.contextmanager
    def client(self, user: str | None = None, password: str | None = None) -> Iterator[IMAPClient]:
        """A logged-in IMAP connection over the plain port: the tests' own view of the
        mailbox, separate from the code under test."""
        imap = IMAPClient(self.host, self.port, ssl=False, timeout=10)
        try:
            imap.login(user or self.user, password or self.password)
            yield imap
        finally:
            with contextlib.suppress(Exception):
                imap.logout()

    def append(self, folder: str, raw: bytes, flags: Collection[str] = ()) -> int:
        """APPEND a message; returns its UID."""
        with self.client() as imap:
            reply = imap.append(folder, raw, flags=tuple(flags))
        found = _APPENDUID.search(reply)
        assert found is not None, f"no APPENDUID in {reply!r}"
        return int(found.group(1))

    def uids(self, folder: str = "INBOX") -> list[int]:
        with self.client() as imap:
            imap.select_folder(folder, readonly=True)
            return sorted(int(uid) for uid in imap.search("ALL"))

    def flags(self, folder: str, uid: int) -> frozenset[str]:
        """The flags of one message, read without changing them."""
        with self.client() as imap:
            imap.select_folder(folder, readonly=True)
            found = imap.get_flags([uid])
        if uid not in found:
            raise LookupError(f"no message with UID {uid} in {folder}")
        return frozenset(_text(flag) for flag in found[uid])

    def message(self, folder: str, uid: int) -> bytes:
        """One message's bytes, read with BODY.PEEK (its flags stay as they are)."""
        with self.client() as imap:
            imap.select_folder(folder, readonly=True)
            found = imap.fetch([uid], ["BODY.PEEK[]"])
        if uid not in found:
            raise LookupError(f"no message with UID {uid} in {folder}")
        data: bytes = found[uid][b"BODY[]"]
        return data

    def delete(self, folder: str, uid: int) -> None:
        """Remove one message for good: \\Deleted, then UID EXPUNGE of that UID only."""
        with self.client() as imap:
            imap.select_folder(folder)
            imap.delete_messages([uid], silent=True)
            imap.uid_expunge([uid])

    def uidvalidity(self, folder: str = "INBOX") -> int:
        with self.client() as imap:
            return int(imap.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"])

    def create_folder(self, name: str) -> None:
        with self.client() as imap:
            imap.create_folder(name)

    def folders(self) -> list[str]:
        with self.client() as imap:
            return sorted(_text(name) for _flags, _sep, name in imap.list_folders())

    def reset_uidvalidity(self, folder: str = "INBOX") -> int:
        """Make Dovecot forget the folder's UIDs, as after a rebuilt index or a restore: the
        messages stay, get new UIDs, and the folder a new UIDVALIDITY (returned). Call it
        while no connection has the folder selected."""
        before = self.uidvalidity(folder)
        path = self.maildir(folder)
        for leftover in [path / "dovecot-uidlist", *path.glob("dovecot.index*")]:
            leftover.unlink(missing_ok=True)
        after = self.uidvalidity(folder)
        assert after != before, f"UIDVALIDITY of {folder} stayed {before}"
        return after

    def maildir(self, folder: str = "INBOX", user: str | None = None) -> Path:
        """Where a folder lives on disk (Maildir++: INBOX is the root, others `.Name`)."""
        root = self.mail_root / (user or self.user) / "Maildir"
        return root if folder.upper() == "INBOX" else root / f".{folder}"

    # --- internals ----------------------------------------------------------------------------

    def _config(self) -> str:
        accounts = self._accounts
        tls_lines = (
            f"ssl = yes\nssl_cert = <{self.certs.cert_file}\nssl_key = <{self.certs.key_file}\n"
            if self.certs
            else "ssl = no\n"
        )
        tls_listener = (
            f"  inet_listener imaps {{\n    address = {self.host}\n    port = {self.tls_port}\n"
            "    ssl = yes\n  }\n"
            if self.tls_port
            else "  inet_listener imaps {\n    port = 0\n  }\n"
        )
        capability = ""
        if self.without_capabilities:
            kept = [c for c in DEFAULT_CAPABILITIES if c.upper() not in self.without_capabilities]
            capability = f'imap_capability = "{" ".join(kept)}"\n'
        # Non-root runs cannot chroot the login processes or switch users.
        no_chroot = (
            ""
            if accounts.root
            else "service anvil {\n  chroot =\n}\nservice imap-login {\n  chroot =\n}\n"
        )
        folder = self.folder
        return (
            "# A throwaway Dovecot for dripper's tests: loopback only, one folder for all.\n"
            "protocols = imap\n"
            f"listen = {self.host}\n"
            f"base_dir = {folder}/run\n"
            f"state_dir = {folder}/state\n"
            f"log_path = {self.log_file}\n"
            f"info_log_path = {self.log_file}\n"
            f"{tls_lines}"
            "disable_plaintext_auth = no\n"
            "auth_mechanisms = plain login\n"
            "auth_failure_delay = 0\n"
            f"default_login_user = {accounts.login_user}\n"
            f"default_internal_user = {accounts.internal_user}\n"
            f"default_internal_group = {accounts.internal_group}\n"
            f"first_valid_uid = {accounts.mail_uid}\n"
            f"first_valid_gid = {accounts.mail_gid}\n"
            "mail_location = maildir:~/Maildir\n"
            f"{capability}"
            "passdb {\n  driver = passwd-file\n"
            f"  args = scheme=PLAIN username_format=%u {self.users_file}\n}}\n"
            "userdb {\n  driver = passwd-file\n"
            f"  args = username_format=%u {self.users_file}\n}}\n"
            "service imap-login {\n"
            f"  inet_listener imap {{\n    address = {self.host}\n    port = {self.port}\n  }}\n"
            f"{tls_listener}"
            "}\n"
            f"{no_chroot}"
        )

    def _wait_ready(self, deadline: float) -> str | None:
        """None once the plain port greets (and the TLS port accepts), else what went wrong."""
        process = self._process
        assert process is not None
        last = "no greeting yet"
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return f"dovecot exited with status {process.returncode}"
            try:
                greeting = _greeting(self.host, self.port)
                if not greeting.startswith(b"* OK"):
                    last = f"unexpected greeting {greeting!r}"
                elif self.tls_port is None or _accepts(self.host, self.tls_port):
                    return None
            except OSError as error:
                last = str(error)
            time.sleep(0.02)
        return f"no IMAP greeting on {self.host}:{self.port} within {START_TIMEOUT:.0f}s ({last})"

    def _signal_group(self, process: subprocess.Popen[bytes], signum: int) -> None:
        # The group is the session start_new_session made for the master we started.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)


@dataclass(frozen=True)
class _Accounts:
    """Which system users Dovecot's processes and the mail user run as."""

    root: bool
    login_user: str
    internal_user: str
    internal_group: str
    mail_uid: int
    mail_gid: int


def _accounts() -> _Accounts:
    if os.geteuid() != 0:
        # Not root: everything runs as whoever runs the tests.
        me = pwd.getpwuid(os.geteuid())
        return _Accounts(
            root=False,
            login_user=me.pw_name,
            internal_user=me.pw_name,
            internal_group=grp.getgrgid(os.getegid()).gr_name,
            mail_uid=me.pw_uid,
            mail_gid=os.getegid(),
        )
    try:
        internal = pwd.getpwnam("dovecot")
        pwd.getpwnam("dovenull")
    except KeyError:
        pytest.fail(
            f"the system users dovecot and dovenull are missing: {INSTALL_HINT}", pytrace=False
        )
    return _Accounts(
        root=True,
        login_user="dovenull",
        internal_user=internal.pw_name,
        internal_group=grp.getgrgid(internal.pw_gid).gr_name,
        mail_uid=internal.pw_uid,
        mail_gid=internal.pw_gid,
    )


def _greeting(host: str, port: int) -> bytes:
    with socket.create_connection((host, port), timeout=2) as conn:
        return conn.recv(512)


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@pytest.fixture
def dovecot() -> Iterator[DovecotServer]:
    """A fresh Dovecot (plain port offering STARTTLS, and an implicit-TLS port) per test."""
    with DovecotServer() as server:
        yield server
        # pytest shows teardown output only under a failed test: there, the log helps.
        print(server.logs())
