/**
 * `node:fs`'s existsSync / readFileSync for test files running in a page: a test reads its golden file by a URL
 * (`new URL('../golden/x.safetensors', import.meta.url)`, which the bundler turns into the served asset's URL),
 * fetched with a synchronous request because the tests call these synchronously.
 */
function request(method: 'GET' | 'HEAD', url: string): XMLHttpRequest {
  const xhr = new XMLHttpRequest();
  xhr.open(method, url, false);
  // A synchronous request in a page cannot ask for an ArrayBuffer; bytes survive as a user-defined charset.
  xhr.overrideMimeType('text/plain; charset=x-user-defined');
  xhr.send();
  return xhr;
}

const text = (path: string | URL): string => (typeof path === 'string' ? path : path.href);

export function existsSync(path: string | URL): boolean {
  return request('HEAD', text(path)).status === 200;
}

export function readFileSync(path: string | URL): Uint8Array {
  const xhr = request('GET', text(path));
  if (xhr.status !== 200) throw new Error(`readFileSync ${text(path)}: HTTP ${xhr.status} (served by the browser test's static server)`);
  const s = xhr.responseText;
  const bytes = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i) & 0xff;
  return bytes;
}

export default { existsSync, readFileSync };
