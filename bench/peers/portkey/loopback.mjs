// Preloaded by bench/gateway_peer.py (node --import): Portkey's start-server.js has no host option, so
// @hono/node-server would listen on every interface; the gateway forwards to any custom host it is given, so the
// bench keeps it on loopback.
import net from "node:net";

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (port, host, ...rest) {
  if (typeof port === "number" && host === undefined) {
    return listen.call(this, port, "127.0.0.1", ...rest);
  }
  return listen.call(this, port, host, ...rest);
};
