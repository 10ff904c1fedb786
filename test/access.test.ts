// authorized-keys options and what they give each client (spec/PROTOCOL.md §7.4): the syntax
// (src/crypto/authorized-keys.ts) and its meaning (src/recv/access.ts), and the namespace mapping
// every command goes through (src/recv/namespace.ts).
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, test } from 'node:test';
import { authorizedKeyLine, identityFingerprint, parseAuthorizedKeyLines, parseAuthorizedKeys } from '../src/crypto/index.js';
import { admits, checkNamespaceTemplate, fingerprintComponent, parseKeyRights, rightsOf, type Access } from '../src/recv/access.js';
import { clientName, storedName, storedPrefix } from '../src/recv/namespace.js';

const key = (): KeyObject => generateKeyPairSync('ed25519').privateKey;
const k1 = key();
const k2 = key();
const fp1 = identityFingerprint(k1);
const fp2 = identityFingerprint(k2);
const line1 = authorizedKeyLine(k1, 'web1');
const b64 = (line1.split(' ')[1] ?? '');

const daemon = { appendOnly: false, allowDownload: false, maxFileBytes: undefined };

describe('authorized-keys syntax (§7.4)', () => {
  test('options before the key type: bare names and quoted values, comment after the key', () => {
    const [entry] = parseAuthorizedKeyLines(`namespace="hosts/web 1",append-only,max-size="1G" stx-ed25519 ${b64} web1 "quoted" comment`, 'f');
    assert.ok(entry !== undefined);
    assert.equal(entry.fingerprint, fp1);
    assert.deepEqual(entry.options, [
      { name: 'namespace', value: 'hosts/web 1' },
      { name: 'append-only', value: undefined },
      { name: 'max-size', value: '1G' },
    ]);
    assert.equal(entry.where, 'f:1');
  });

  test('a \\" inside quotes is a quote; a line without options reads as before', () => {
    const [a, b] = parseAuthorizedKeyLines(`namespace="a\\"b" stx-ed25519 ${b64}\n\n# c\n${authorizedKeyLine(k2)}`, 'f');
    assert.ok(a !== undefined && b !== undefined);
    assert.deepEqual(a.options, [{ name: 'namespace', value: 'a"b' }]);
    assert.deepEqual(b.options, []);
    assert.equal(b.where, 'f:4');
    assert.deepEqual(parseAuthorizedKeys(`download ${line1}\n${authorizedKeyLine(k2)}`), new Set([fp1, fp2]));
  });

  test('malformed options name the line', () => {
    const bad: readonly [string, RegExp][] = [
      [`namespace=hosts stx-ed25519 ${b64}`, /f:2: option namespace: the value must be in double quotes/],
      [`namespace="hosts stx-ed25519 ${b64}`, /f:2: option namespace: no closing quote/],
      [`download,,append-only stx-ed25519 ${b64}`, /f:2: expected an option name/],
      [`download stx-ed25519`, /f:2: expected "\[options\] stx-ed25519/],
      [`download`, /f:2: options but no key/],
      [`download;x stx-ed25519 ${b64}`, /f:2: expected an option name/],
      [`download="x"y stx-ed25519 ${b64}`, /f:2: option download: unexpected "y"/],
      [`namespace="a\tb" stx-ed25519 ${b64}`, /f:2: option namespace: the value contains a control character/],
      [`ssh-ed25519 ${b64}`, /f:2: expected "\[options\] stx-ed25519/],
    ];
    for (const [text, message] of bad) assert.throws(() => parseAuthorizedKeyLines(`# ok\n${text}`, 'f'), message, text);
  });

  test('a key listed twice is refused (its rights would be ambiguous)', () => {
    assert.throws(() => parseAuthorizedKeyLines(`${line1}\nappend-only ${line1}`, 'f'), /f:2: this key is listed already at f:1/);
  });
});

describe('option meanings (recv/access.ts)', () => {
  test('every option, and keys without options', () => {
    const keys = parseKeyRights(`namespace="hosts/web1/",append-only,download,max-size="1K" ${line1}\nno-upload,no-download ${authorizedKeyLine(k2)}`, 'f');
    assert.deepEqual(keys.get(fp1), { namespace: ['hosts', 'web1'], appendOnly: true, noUpload: false, download: true, maxFileBytes: 1024 });
    assert.deepEqual(keys.get(fp2), { appendOnly: false, noUpload: true, download: false });
  });

  test('unknown options, repeated ones, values where none belong, bad namespaces and sizes name the line', () => {
    const bad: readonly [string, RegExp][] = [
      ['permit-everything', /f:1: unknown option "permit-everything"/],
      ['download,download', /f:1: option download is given twice/],
      ['download,no-download', /f:1: download and no-download together/],
      ['append-only="yes"', /f:1: option append-only takes no value/],
      ['namespace', /f:1: option namespace needs a value/],
      ['namespace="../etc"', /f:1: namespace="\.\.\/etc": name has a "\.\." component/],
      ['namespace="/abs"', /f:1: namespace="\/abs": name is absolute/],
      ['namespace=".stx/partials"', /f:1: namespace=".stx\/partials": .*reserved/],
      ['namespace="cafe\u0301"', /f:1: namespace=.*NFC/],
      ['namespace=""', /f:1: namespace="": empty name/],
      ['max-size="lots"', /f:1: max-size="lots": not a size/],
      ['max-size="0"', /f:1: max-size="0": size must be positive/],
    ];
    for (const [options, message] of bad) assert.throws(() => parseKeyRights(`${options} ${line1}`, 'f'), message, options);
  });

  test('rights: the daemon flags for everyone, a key adds append-only, narrows the size, decides downloads', () => {
    const keys = parseKeyRights(`namespace="a",append-only,max-size="1K" ${line1}\nno-download,max-size="1M" ${authorizedKeyLine(k2)}`, 'f');
    const access: Access = { keys, anonymousNamespace: null, defaultNamespace: null };
    const strict = { appendOnly: true, allowDownload: true, maxFileBytes: 4096 };
    assert.deepEqual(rightsOf(access, daemon, fp1), { namespace: ['a'], upload: true, appendOnly: true, download: false, maxFileBytes: 1024 });
    assert.deepEqual(rightsOf(access, strict, fp2), { namespace: [], upload: true, appendOnly: true, download: false, maxFileBytes: 4096 });
    assert.equal(rightsOf(access, daemon, identityFingerprint(key())), null, 'an unlisted key');
    assert.equal(rightsOf(access, daemon, null), null, 'anonymous, with a key file and no --anonymous-namespace');
    assert.deepEqual(admits(access), { keys: new Set([fp1, fp2]), anonymous: false });
  });

  test('from="…": only those source addresses (IPv4-mapped IPv6 counts as IPv4); a bad list names the line', () => {
    const keys = parseKeyRights(`from="127.0.0.1,10.0.0.0/8,2001:db8::/32" ${line1}`, 'f');
    const access: Access = { keys, anonymousNamespace: null, defaultNamespace: null };
    for (const source of ['127.0.0.1', '10.1.2.3', '::ffff:10.9.9.9', '2001:db8:1::5']) assert.notEqual(rightsOf(access, daemon, fp1, source), null, source);
    for (const source of ['127.0.0.2', '11.0.0.1', '::1', '2001:db9::1', undefined]) assert.equal(rightsOf(access, daemon, fp1, source), null, String(source));
    for (const bad of ['localhost', '10.0.0.0/33', '10.0.0.0/8/1', '10.0.0.0/x', '']) {
      assert.throws(() => parseKeyRights(`from="${bad}" ${line1}`, 'f'), /f:1: from=/, bad);
    }
  });

  test('anonymous clients and keys without namespace=: --anonymous-namespace, --default-namespace', () => {
    const keys = parseKeyRights(`${line1}\nnamespace="own" ${authorizedKeyLine(k2)}`, 'f');
    const access: Access = { keys, anonymousNamespace: ['drop'], defaultNamespace: 'clients/%k' };
    assert.deepEqual(rightsOf(access, daemon, null)?.namespace, ['drop']);
    assert.deepEqual(rightsOf(access, daemon, fp1)?.namespace, ['clients', fingerprintComponent(fp1)]);
    assert.deepEqual(rightsOf(access, daemon, fp2)?.namespace, ['own']);
    assert.equal(admits(access).anonymous, true);
    assert.doesNotMatch(fingerprintComponent(fp1), /[/+:]/);
    // No key file: every key gets in, as a key without options.
    const open: Access = { keys: null, anonymousNamespace: null, defaultNamespace: null };
    assert.deepEqual(rightsOf(open, daemon, fp1), { namespace: [], upload: true, appendOnly: false, download: false, maxFileBytes: undefined });
    assert.deepEqual(rightsOf(open, daemon, null)?.namespace, []);
    assert.deepEqual(admits(open), { keys: null, anonymous: true });
    checkNamespaceTemplate('clients/%k/%%');
    assert.throws(() => checkNamespaceTemplate('clients/%u'), /only %k/);
    assert.throws(() => checkNamespaceTemplate('../%k'), /"\.\."/);
  });
});

describe('namespace mapping (recv/namespace.ts)', () => {
  test('names go under the namespace; what lies outside, or a sibling that shares its prefix, has no client name', () => {
    const web1 = ['hosts', 'web1'];
    assert.deepEqual(storedName(web1, 'a/b'), ['hosts', 'web1', 'a', 'b']);
    assert.deepEqual(storedPrefix(web1, ''), web1);
    assert.equal(clientName(web1, ['hosts', 'web1', 'a', 'b']), 'a/b');
    assert.equal(clientName(web1, ['hosts', 'web10', 'a']), null);
    assert.equal(clientName(web1, ['hosts', 'web1']), null, 'the namespace itself is no file of the client');
    assert.equal(clientName(web1, ['other']), null);
    for (const name of ['../web10/a', '/etc/passwd', 'a/../../x', 'caf\u0065\u0301']) assert.throws(() => storedName(web1, name), /BAD_NAME|NFC|\.\.|absolute/, name);
  });
});
