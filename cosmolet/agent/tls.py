"""TLS for ``http.listen`` (``http.tls``): the certificate and key from files, typically a
mounted Secret, re-read when either file changes so that a renewed certificate is served
without a restart.

A Secret volume is updated by swapping a symlink, so both files change at once; a file written
in place may be caught half-way, and then the reload fails, is logged, and the previous
certificate goes on being served until the next change (a new write of either file).
"""

from __future__ import annotations

import os
import ssl
import threading
from pathlib import Path

from cosmolet import logs

log = logs.get("cosmolet.http")

#: What identifies a file's version: ``os.stat`` follows the Secret's symlinks.
Stamp = tuple[tuple[int, int, int, int], ...]


def _context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A server context with the certificate chain and key; TLS 1.2 at least."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


class ReloadingContext:
    """The ``SSLContext`` for each new connection, rebuilt when the files changed.

    Raises (from the constructor) ``OSError`` or ``ssl.SSLError`` when the files cannot be
    read or do not hold a certificate and its key: the caller refuses to serve rather than
    fall back to plain HTTP.
    """

    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self._lock = threading.Lock()
        self._stamp = self._files()
        self._context = _context(cert_file, key_file)

    def _files(self) -> Stamp:
        stats = (os.stat(self.cert_file), os.stat(self.key_file))
        return tuple((s.st_dev, s.st_ino, s.st_mtime_ns, s.st_size) for s in stats)

    def current(self) -> ssl.SSLContext:
        """The context to use now; a failed reload keeps the last good one (and says so once
        per change of the files, not once per connection)."""
        try:
            stamp = self._files()
        except OSError as error:
            with self._lock:
                return self._context_after_failure(None, error)
        with self._lock:
            if stamp == self._stamp:
                return self._context
            try:
                self._context = _context(self.cert_file, self.key_file)
            except (OSError, ssl.SSLError) as error:
                return self._context_after_failure(stamp, error)
            self._stamp = stamp
            log.info("TLS certificate reloaded", cert_file=str(self.cert_file))
            return self._context

    def _context_after_failure(self, stamp: Stamp | None, error: Exception) -> ssl.SSLContext:
        """Log the failure once for this state of the files; keep serving the last good one."""
        if stamp != self._stamp:
            self._stamp = stamp if stamp is not None else ()
            log.error(
                "cannot reload the TLS certificate; serving the previous one",
                cert_file=str(self.cert_file),
                key_file=str(self.key_file),
                error=str(error),
            )
        return self._context
