// Service worker: keeps the app shell available offline (kiosks, classrooms without
// network). Network first, so a new deployment is picked up when online; the cache
// answers when offline. Model files are never cached here: the engine keeps them in
// OPFS, which copes with multi-GB files where the Cache API hits quota errors.
const CACHE = 'm1-shell-v4';
const SHELL = [
  './', './index.html', './boot.js', './style.css', './m1-app.js', './m1-app_bg.wasm',
  './worker_loader.js', './worker.js', './worker_bg.wasm', './worker-mt_loader.js',
  './worker-mt.js', './worker-mt_bg.wasm', './cpu_thread.js', './fetch_thread.js',
  './cache_thread.js',
  './models.json', './icon.svg', './manifest.webmanifest',
];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

// The site may live under any path; the worker sits at its root.
const MODELS = new URL('./models/', self.location).href;

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== self.location.origin) return;
  // Models and their listing are never cached here (see above): nothing to answer offline,
  // so the browser fetches them itself.
  if (url.pathname.endsWith('.gguf') || url.href.startsWith(MODELS)) return;
  event.respondWith(
    fetch(event.request)
      .then((resp) => {
        if (resp.ok) {
          const copy = resp.clone();
          caches.open(CACHE).then((c) => c.put(event.request, copy));
        }
        return resp;
      })
      .catch(() => caches.match(event.request, { ignoreSearch: true })
        .then((hit) => hit || (event.request.mode === 'navigate' ? caches.match('./index.html') : undefined))),
  );
});
