"""A loopback TCP proxy that can cut every connection through it, for reconnect tests."""
import select
import socket
import threading


class TcpProxy:
    def __init__(self, target_port, host="127.0.0.1"):
        self.target = (host, target_port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.pairs = []
        self.cuts = 0
        self.closed = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.closed:
            try:
                r, _, _ = select.select([self.listener] + self._sockets(), [], [], 0.05)
            except (OSError, ValueError):
                # cut() closed a socket of the list between taking it and the select: the
                # next turn takes the list again. (Left unhandled, it ends the thread and every
                # later connection through the proxy with it.)
                continue
            for s in r:
                if s is self.listener:
                    self._accept()
                else:
                    self._pump(s)

    def _sockets(self):
        with self.lock:
            return [s for pair in self.pairs for s in pair]

    def _accept(self):
        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        try:
            upstream = socket.create_connection(self.target)
        except OSError:
            client.close()
            return
        with self.lock:
            self.pairs.append((client, upstream))

    def _pump(self, s):
        with self.lock:
            pair = next((p for p in self.pairs if s in p), None)
        if pair is None:
            return
        other = pair[1] if s is pair[0] else pair[0]
        try:
            data = s.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._close_pair(pair)
            return
        try:
            other.sendall(data)
        except OSError:
            self._close_pair(pair)

    def _close_pair(self, pair):
        with self.lock:
            if pair in self.pairs:
                self.pairs.remove(pair)
        for s in pair:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def cut(self):
        """Closes every connection through the proxy; new ones are still accepted."""
        with self.lock:
            pairs = list(self.pairs)
        for p in pairs:
            self._close_pair(p)
        self.cuts += len(pairs)
        return len(pairs)

    def close(self):
        self.closed = True
        self.thread.join(timeout=2)
        self.cut()
        self.listener.close()
