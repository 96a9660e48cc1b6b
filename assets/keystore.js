// The device token where both the phone app and its service worker can read
// it: IndexedDB (a service worker has no localStorage). A classic script
// that defines `self.topdogKeys`, so the app (a module) and the worker
// (`importScripts`) load the same file.
self.topdogKeys = (() => {
  const open = () => new Promise((resolve, reject) => {
    const request = indexedDB.open("topdog", 1);
    request.onupgradeneeded = () => request.result.createObjectStore("keys");
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  const run = async (mode, act) => {
    const db = await open();
    return new Promise((resolve, reject) => {
      const tx = db.transaction("keys", mode);
      const request = act(tx.objectStore("keys"));
      tx.oncomplete = () => { db.close(); resolve(request.result); };
      tx.onerror = () => { db.close(); reject(tx.error); };
    });
  };
  return {
    get: (name) => run("readonly", (store) => store.get(name)),
    set: (name, value) => run("readwrite", (store) => store.put(value, name)),
    remove: (name) => run("readwrite", (store) => store.delete(name)),
  };
})();
