/** The problems of one package directory, as lines; empty when it packs soundly (see check-package.mjs). */
export declare const checkPackage: (dir: string) => Array<string>
