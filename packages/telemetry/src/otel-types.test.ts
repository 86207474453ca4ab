/**
 * The types of `@proxyless/telemetry/otel` (and so of `proxyless/otel`) reference none of the
 * optional peer dependencies: an application without the OpenTelemetry SDK installed compiles
 * against them (was TS2307 under `skipLibCheck: false`, silent `any` under `skipLibCheck: true`),
 * and one that passes the SDK's exporter or uses its provider still compiles.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Tracer } from '@opentelemetry/api';
import { InMemorySpanExporter, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import ts from 'typescript';
import { describe, expect, expectTypeOf, it } from 'vitest';
import type { OtelHandle, OtelOptions, SpanExporterLike, TracerProviderLike } from './otel.js';

const SRC = path.dirname(fileURLToPath(import.meta.url));
const OTEL = path.join(SRC, 'otel.ts');

/** The optional peer dependencies, as packages/telemetry/package.json declares them. */
function optionalPeers(): string[] {
  const pkg = JSON.parse(readFileSync(path.join(SRC, '..', 'package.json'), 'utf8')) as {
    peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  };
  return Object.entries(pkg.peerDependenciesMeta ?? {})
    .filter(([, meta]) => meta.optional === true)
    .map(([name]) => name);
}

/** The declaration file TypeScript emits for otel.ts (and the ones it imports), in memory. */
function emittedDeclaration(): { text: string; diagnostics: readonly ts.Diagnostic[] } {
  const out = new Map<string, string>();
  const program = ts.createProgram([OTEL], {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    customConditions: ['@proxyless/source'],
    strict: true,
    skipLibCheck: true,
    types: ['node'],
    declaration: true,
    emitDeclarationOnly: true,
    outDir: path.join(SRC, '..', '.types-test-out'),
  });
  const result = program.emit(program.getSourceFile(OTEL), (fileName, text) => out.set(fileName, text));
  const text = [...out].find(([fileName]) => fileName.endsWith('otel.d.ts'))?.[1] ?? '';
  return { text, diagnostics: result.diagnostics };
}

/**
 * The modules a declaration file references: `import`/`export … from`, `import('…')` types,
 * `/// <reference types>`. (Its doc comments and the literal type of `OTEL_SDK_PACKAGES` name the
 * packages too, as text: that needs none of them installed.)
 */
function referencedModules(declaration: string): string[] {
  const file = ts.createSourceFile('otel.d.ts', declaration, ts.ScriptTarget.ES2022, true);
  const out = file.typeReferenceDirectives.map((r) => r.fileName);
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier)
      out.push((node.moduleSpecifier as ts.StringLiteral).text);
    if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference))
      out.push((node.moduleReference.expression as ts.StringLiteral).text);
    if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument))
      out.push((node.argument.literal as ts.StringLiteral).text);
    ts.forEachChild(node, visit);
  };
  visit(file);
  return out;
}

describe('the types of proxyless/otel', () => {
  it('take an SDK span exporter and give a provider that the SDK’s NodeTracerProvider is', () => {
    expectTypeOf<SpanExporter>().toExtend<SpanExporterLike>();
    expectTypeOf<InMemorySpanExporter>().toExtend<SpanExporterLike>();
    expectTypeOf<InMemorySpanExporter>().toExtend<NonNullable<OtelOptions['exporter']>>();
    expectTypeOf<NodeTracerProvider>().toExtend<TracerProviderLike>();
    expectTypeOf<NodeTracerProvider>().toExtend<NonNullable<OtelHandle['provider']>>();
    expectTypeOf<TracerProviderLike['getTracer']>().returns.toEqualTypeOf<Tracer>();
    expectTypeOf<OtelHandle['provider']>().not.toBeAny();
    expectTypeOf<OtelOptions['exporter']>().not.toBeAny();
    // What a user writes with the SDK installed compiles.
    const options: OtelOptions = { exporter: new InMemorySpanExporter(), register: false };
    expect(options.exporter).toBeInstanceOf(InMemorySpanExporter);
  });

  it('reference none of the optional peer dependencies', () => {
    const peers = optionalPeers();
    expect(peers).toEqual(
      expect.arrayContaining(['@opentelemetry/sdk-trace-node', '@opentelemetry/resources']),
    );
    const { text, diagnostics } = emittedDeclaration();
    expect(diagnostics.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'))).toEqual([]);
    expect(text).toContain('export declare function startOtel');
    expect(text).toContain('interface OtelHandle');
    const modules = referencedModules(text);
    expect(modules).toContain('@proxyless/core');
    // No module of an optional peer, nor a subpath of one.
    expect(modules.filter((m) => peers.some((name) => m === name || m.startsWith(`${name}/`)))).toEqual([]);
    expect(text).not.toMatch(/\bany\b/);
  });
});
