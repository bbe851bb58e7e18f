// One thread of the CPU path's pool (app/src/worker/threads.rs): a Web Worker that runs the
// threaded engine's module on the engine worker's shared memory, then the pool body the
// engine sent it (a pointer into that memory). It returns only when the pool stops.
importScripts('./worker-mt.js');

self.onmessage = async ({ data: [module, memory, body] }) => {
  self.onmessage = null;
  await wasm_bindgen({ module_or_path: module, memory });
  wasm_bindgen.m1_cpu_thread(body);
  close();
};
