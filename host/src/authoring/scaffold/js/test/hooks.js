// Node module hook (registered by test/setup.js): the host's import
// specifier resolves to test/host.js.
export async function resolve(specifier, context, next) {
  if (specifier.startsWith('host:plugin/host@')) {
    return { url: new URL('./host.js', import.meta.url).href, shortCircuit: true };
  }
  return next(specifier, context);
}
