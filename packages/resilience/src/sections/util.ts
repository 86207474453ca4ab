/** Every field optional and writable, recursively (arrays stay whole). */
export type DeepPartial<T> = {
  -readonly [K in keyof T]?: T[K] extends object | undefined ? DeepPartialValue<T[K]> : T[K];
};
type DeepPartialValue<T> = T extends readonly unknown[] ? T : T extends object ? DeepPartial<T> : T;
