import { createServer } from "node:net";

/**
 * A TCP port free on `host` right now. Chosen below the kernel's ephemeral range (32768+), so no outgoing connection
 * takes it before the caller binds it; "0.0.0.0" (the default) checks every address, as a server listening on all
 * addresses needs (a port free on 127.0.0.1 may be a simulated host's sshd port on 127.0.1.x).
 */
export async function freePort(host = "0.0.0.0"): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 15000 + Math.floor(Math.random() * 17000);
    if (await canListen(host, port)) return port;
  }
  return kernelPort(host);
}

function canListen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", () => resolve(false));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

function kernelPort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen({ host, port: 0, exclusive: true }, () => {
      const addr = srv.address();
      srv.close(() => {
        if (addr && typeof addr === "object") resolve(addr.port);
        else reject(new Error("no port assigned"));
      });
    });
  });
}
