/**
 * A minimal `Reflect` metadata polyfill. `@peculiar/x509` 2.x depends on tsyringe, which throws at
 * load unless `Reflect.getMetadata` exists; these five functions are all tsyringe and tslib call.
 * Replace with the `reflect-metadata` package once it is a dependency.
 */
type MetadataKey = unknown;
type Store = Map<string | symbol | undefined, Map<MetadataKey, unknown>>;

const stores = new WeakMap<object, Store>();

function store(target: object, create: boolean): Store | undefined {
  let s = stores.get(target);
  if (!s && create) {
    s = new Map();
    stores.set(target, s);
  }
  return s;
}

function getOwn(key: MetadataKey, target: object, prop?: string | symbol): unknown {
  return store(target, false)?.get(prop)?.get(key);
}

function get(key: MetadataKey, target: object, prop?: string | symbol): unknown {
  let t: object | null = target;
  while (t) {
    const map = store(t, false)?.get(prop);
    if (map?.has(key)) return map.get(key);
    t = Object.getPrototypeOf(t) as object | null;
  }
  return undefined;
}

function define(key: MetadataKey, value: unknown, target: object, prop?: string | symbol): void {
  const s = store(target, true) as Store;
  let map = s.get(prop);
  if (!map) {
    map = new Map();
    s.set(prop, map);
  }
  map.set(key, value);
}

const reflect = Reflect as unknown as Record<string, unknown>;
if (typeof reflect.getMetadata !== "function") {
  reflect.getMetadata = get;
  reflect.getOwnMetadata = getOwn;
  reflect.defineMetadata = define;
  reflect.hasMetadata = (key: MetadataKey, target: object, prop?: string | symbol) =>
    get(key, target, prop) !== undefined;
  reflect.metadata =
    (key: MetadataKey, value: unknown) =>
    (target: object, prop?: string | symbol): void =>
      define(key, value, target, prop);
}
