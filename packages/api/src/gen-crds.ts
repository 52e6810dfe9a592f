/** `pnpm gen:crds` (node dist/src/gen-crds.js [--check] [--out DIR]). */
import { genCrds } from "./crd-files.js";

const result = await genCrds(process.argv.slice(2));
(result.code === 0 ? process.stdout : process.stderr).write(result.output);
process.exitCode = result.code;
