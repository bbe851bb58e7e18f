// The threaded engine worker (xtask/src/threaded.rs builds worker-mt.js), started by the
// page where it is cross-origin isolated; Trunk writes the same shim for the other build.
importScripts("./worker-mt.js");wasm_bindgen("./worker-mt_bg.wasm");
