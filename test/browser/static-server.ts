/** A static file server on 127.0.0.1 (a free port) for the built page and the kernel test page. */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { extname, join, normalize, resolve, sep } from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json',
  '.wasm': 'application/wasm', '.svg': 'image/svg+xml', '.png': 'image/png',
};

export interface StaticServer {
  url: string;
  close(): Promise<void>;
}

/** Serves `root`; `extra` maps URL paths to other folders (e.g. test goldens). Nothing outside them is served. */
export async function serveStatic(root: string, extra: Record<string, string> = {}): Promise<StaticServer> {
  const base = resolve(root);
  const server: Server = createServer((req, res) => {
    void (async () => {
      const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
      let folder = base;
      let rel = path;
      for (const [prefix, dir] of Object.entries(extra)) {
        if (path.startsWith(prefix)) {
          folder = resolve(dir);
          rel = path.slice(prefix.length);
        }
      }
      let file = normalize(join(folder, rel));
      if (file !== folder && !file.startsWith(folder + sep)) {
        res.writeHead(403).end();
        return;
      }
      const info = await stat(file).catch(() => null);
      if (info?.isDirectory()) file = join(file, 'index.html');
      const fileInfo = await stat(file).catch(() => null);
      if (!fileInfo?.isFile()) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${path}`);
        return;
      }
      res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'content-length': fileInfo.size, 'cache-control': 'no-store' });
      createReadStream(file).pipe(res);
    })();
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => ok());
  });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('static server: no TCP address');
  return {
    url: `http://127.0.0.1:${address.port}/`,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}
