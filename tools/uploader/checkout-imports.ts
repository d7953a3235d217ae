import module from "node:module";

/**
 * `anchorpipe test` reads reports with the service's own parsers (src/ingestion/formats), whose relative
 * imports carry no extension (`./junit`), as the Worker's bundler and vitest resolve them. Node, running
 * the checkout's TypeScript directly, does not: this resolve hook retries such an import with `.ts`. It is
 * registered before those modules are imported (dynamically; static imports are resolved before any code
 * runs). The built package is one bundled file with no relative imports left, so there it changes nothing,
 * and on a Node without `module.registerHooks` (before 22.15; the package supports 18) it is not needed.
 */
export function resolveExtensionlessImports(): void {
  const register = (module as { registerHooks?: typeof module.registerHooks }).registerHooks;
  if (typeof register !== "function") return;
  register({
    resolve(specifier, context, nextResolve) {
      try {
        return nextResolve(specifier, context);
      } catch (error) {
        const relative = specifier.startsWith("./") || specifier.startsWith("../");
        if (!relative || (error as NodeJS.ErrnoException).code !== "ERR_MODULE_NOT_FOUND") throw error;
        return nextResolve(`${specifier}.ts`, context);
      }
    },
  });
}
