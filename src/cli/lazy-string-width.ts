// yargs lays out --help and its error messages with string-width, whose module builds an
// Intl.Segmenter (ICU's break rules) and Unicode-property regular expressions (\p{RGI_Emoji}, v
// flag) as it loads: ~15 ms of CPU at every start of every CLI, help or not (measured on
// `stx-send --version`). The bundle (package.json "bundle": --alias:string-width=…) points each
// import of string-width (yargs', cliui's, wrap-ansi's) at this file, which loads the real module
// the first time a width is asked for: esbuild runs the top level of a module reached by require()
// only when that require() runs.

/** string-width's options (README of string-width 7 and 8). */
interface Options {
  readonly ambiguousIsNarrow?: boolean;
  readonly countAnsiEscapeCodes?: boolean;
}

type StringWidth = (text: string, options?: Options) => number;

let real: StringWidth | undefined;

/** string-width's default export: the terminal columns `text` takes. */
export default function stringWidth(text: string, options?: Options): number {
  // By path from dist/src/cli/ (what esbuild bundles): the package name would be aliased back here.
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- require() is what makes esbuild load it lazily; an import runs its top level at start
  real ??= (require('../../../node_modules/string-width/index.js') as { default: StringWidth }).default;
  return real(text, options);
}
