// Who may connect and what each client may do (spec/PROTOCOL.md §7.4): the authorized-keys
// options of each key (namespace, append-only, download, no-download, no-upload, max-size, from), the
// daemon's flags for everyone (--append-only, --allow-download, --max-file-size), and what
// anonymous clients and keys without namespace= get (--anonymous-namespace,
// --default-namespace). The file's syntax is src/crypto/authorized-keys.ts; what the options mean
// is policy, so it is here, beside the names (§9.3) and sizes they use. A connection takes its
// Rights once, when its handshake ends, from the Access in force when it was accepted: a SIGHUP
// (reload.ts) changes the rights of new connections only.
import net from 'node:net';
import { parseAuthorizedKeyLines, type AuthorizedKey } from '../crypto/index.js';
import { parseSize } from './args.js';
import { validateName } from './names.js';
import type { Namespace } from './namespace.js';

/** What one authorized-keys line says of its key; unset fields leave it to the daemon's flags. */
export interface KeyRights {
  /** namespace="DIR": the stored directory its names live under. */
  readonly namespace?: Namespace;
  /** append-only: never replace, truncate or delete a stored file (§9.5). */
  readonly appendOnly: boolean;
  /** download (true) / no-download (false): may list and fetch, whatever --allow-download says. */
  readonly download?: boolean;
  /** no-upload: OPEN, MKDIR and SYMLINK are NOT_ALLOWED. */
  readonly noUpload: boolean;
  /** max-size=SIZE: largest file it may upload (the smaller of this and --max-file-size). */
  readonly maxFileBytes?: number;
  /** from="ADDR,NET/BITS,…": the only source addresses it may connect from. */
  readonly from?: net.BlockList;
}

/** The daemon's own flags, for every client. */
export interface DaemonRights {
  /** --append-only: for everyone, whatever a key's options say. */
  readonly appendOnly: boolean;
  /** --allow-download: lists and downloads for every client whose key does not say no-download. */
  readonly allowDownload: boolean;
  /** --max-file-size. */
  readonly maxFileBytes?: number | undefined;
}

/** What a client may do on one connection, fixed when its handshake ends. */
export interface Rights {
  /** The stored directory its names live under ([]: the whole output directory). */
  readonly namespace: Namespace;
  readonly upload: boolean;
  readonly appendOnly: boolean;
  readonly download: boolean;
  readonly maxFileBytes: number | undefined;
}

/** Who may connect, and with which rights (from --authorized-keys and the namespace flags). */
export interface Access {
  /** Listed keys and their options; null without --authorized-keys (any key, and anonymous clients, get in). */
  readonly keys: ReadonlyMap<string, KeyRights> | null;
  /** Where anonymous clients' names live; null: the whole directory without a key file, refused with one. */
  readonly anonymousNamespace: Namespace | null;
  /** Where the names of a key without namespace= live (a template, `%k`: the key); null: the whole directory. */
  readonly defaultNamespace: string | null;
}

/** Whom the handshake lets in: these fingerprints (null: every key), and anonymous clients or not. */
export interface Admitted {
  readonly keys: ReadonlySet<string> | null;
  readonly anonymous: boolean;
}

/** Made once per Access (per file read), not per connection. */
const ADMITTED = new WeakMap<Access, Admitted>();

/** The fingerprints that the handshake lets in (null: every key), and whether anonymous clients get in. */
export function admits(access: Access): Admitted {
  let admitted = ADMITTED.get(access);
  if (admitted === undefined) {
    admitted = { keys: access.keys === null ? null : new Set(access.keys.keys()), anonymous: access.keys === null || access.anonymousNamespace !== null };
    ADMITTED.set(access, admitted);
  }
  return admitted;
}

/** A namespace given on the command line or in a file: a valid name (§9.3), as components. */
export function parseNamespace(text: string): Namespace {
  return validateName(text.replace(/\/+$/, ''));
}

/** A key's fingerprint as one name component for `%k`: base64url of its SHA-256, no "SHA256:". */
export function fingerprintComponent(fingerprint: string): string {
  return fingerprint.replace(/^SHA256:/, '').replace(/\+/g, '-').replace(/\//g, '_');
}

/** Checks a --default-namespace template (`%k` stands for the key, `%%` for %): throws if it cannot make a valid name. */
export function checkNamespaceTemplate(template: string): void {
  if (template.replace(/%[k%]/g, '').includes('%')) throw new Error(`${JSON.stringify(template)}: only %k (the key) and %% may follow a %`);
  parseNamespace(expandTemplate(template, 'SHA256:AAAA'));
}

function expandTemplate(template: string, fingerprint: string): string {
  return template.replace(/%[k%]/g, (m) => (m === '%%' ? '%' : fingerprintComponent(fingerprint)));
}

function refuse(key: AuthorizedKey, message: string): never {
  throw new Error(`${key.where}: ${message}`);
}

/** The rights one line's options give (unknown option, bad or repeated value: an error naming the line). */
function keyRights(key: AuthorizedKey): KeyRights {
  let namespace: Namespace | undefined;
  let appendOnly = false;
  let download: boolean | undefined;
  let noUpload = false;
  let maxFileBytes: number | undefined;
  let from: net.BlockList | undefined;
  const seen = new Set<string>();
  for (const { name, value } of key.options) {
    if (seen.has(name)) refuse(key, `option ${name} is given twice`);
    seen.add(name);
    const flag = (): void => {
      if (value !== undefined) refuse(key, `option ${name} takes no value`);
    };
    const needed = (): string => value ?? refuse(key, `option ${name} needs a value: ${name}="…"`);
    switch (name) {
      case 'namespace':
        try {
          namespace = parseNamespace(needed());
        } catch (err) {
          refuse(key, `namespace=${JSON.stringify(value)}: ${err instanceof Error ? err.message : String(err)}`);
        }
        break;
      case 'append-only':
        flag();
        appendOnly = true;
        break;
      case 'download':
      case 'no-download':
        flag();
        if (download !== undefined) refuse(key, 'download and no-download together');
        download = name === 'download';
        break;
      case 'no-upload':
        flag();
        noUpload = true;
        break;
      case 'from':
        try {
          from = parseSources(needed());
        } catch (err) {
          refuse(key, `from=${JSON.stringify(value)}: ${err instanceof Error ? err.message : String(err)}`);
        }
        break;
      case 'max-size':
        try {
          maxFileBytes = parseSize(needed());
        } catch (err) {
          refuse(key, `max-size=${JSON.stringify(value)}: ${err instanceof Error ? err.message : String(err)}`);
        }
        break;
      default:
        refuse(key, `unknown option ${JSON.stringify(name)} (known: namespace="DIR", append-only, download, no-download, no-upload, max-size="SIZE", from="ADDRESSES")`);
    }
  }
  return {
    appendOnly,
    noUpload,
    ...(namespace === undefined ? {} : { namespace }),
    ...(download === undefined ? {} : { download }),
    ...(maxFileBytes === undefined ? {} : { maxFileBytes }),
    ...(from === undefined ? {} : { from }),
  };
}

/** from="…": IPv4 or IPv6 addresses and networks (`10.0.0.0/8`, `2001:db8::/32`), comma-separated. */
function parseSources(text: string): net.BlockList {
  const list = new net.BlockList();
  for (const item of text.split(',')) {
    const [address = '', bits, extra] = item.trim().split('/');
    const family = net.isIPv4(address) ? 'ipv4' : net.isIPv6(address) ? 'ipv6' : null;
    if (family === null || extra !== undefined) throw new Error(`${JSON.stringify(item.trim())} is not an IP address or ADDRESS/BITS`);
    if (bits === undefined) {
      list.addAddress(address, family);
      continue;
    }
    const prefix = Number(bits);
    if (!/^\d+$/.test(bits) || prefix > (family === 'ipv4' ? 32 : 128)) throw new Error(`${JSON.stringify(item.trim())}: bad prefix length`);
    list.addSubnet(address, prefix, family);
  }
  return list;
}

/** Whether `source` (as a socket reports it; an IPv4-mapped IPv6 address counts as IPv4) is in `list`. */
function fromAllowed(list: net.BlockList, source: string | undefined): boolean {
  if (source === undefined) return false;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(source)?.[1];
  const address = mapped ?? source;
  return list.check(address, net.isIPv4(address) ? 'ipv4' : 'ipv6');
}

/** Parses an authorized-keys file with its options (§7.4); any error names `source` and the line. */
export function parseKeyRights(text: string, source: string): Map<string, KeyRights> {
  const keys = new Map<string, KeyRights>();
  for (const key of parseAuthorizedKeyLines(text, source)) keys.set(key.fingerprint, keyRights(key));
  return keys;
}

/**
 * The rights of the client `fingerprint` (null: anonymous) connecting from `source`, or null if
 * it may not connect (not listed, or not from an address its from= allows). The
 * daemon's --append-only holds for everyone; a key's append-only adds to it. Downloads: a key's
 * download or no-download decides, else --allow-download. The size limit is the smaller of
 * --max-file-size and the key's max-size.
 */
export function rightsOf(access: Access, daemon: DaemonRights, fingerprint: string | null, source?: string): Rights | null {
  const global: Rights = {
    namespace: [],
    upload: true,
    appendOnly: daemon.appendOnly,
    download: daemon.allowDownload,
    maxFileBytes: daemon.maxFileBytes,
  };
  if (fingerprint === null) {
    if (access.anonymousNamespace !== null) return { ...global, namespace: access.anonymousNamespace };
    return access.keys === null ? global : null;
  }
  const own = access.keys === null ? { appendOnly: false, noUpload: false } : access.keys.get(fingerprint);
  if (own === undefined) return null;
  if (own.from !== undefined && !fromAllowed(own.from, source)) return null;
  const namespace = own.namespace ?? (access.defaultNamespace === null ? [] : parseNamespace(expandTemplate(access.defaultNamespace, fingerprint)));
  const limits = [daemon.maxFileBytes, own.maxFileBytes].filter((n): n is number => n !== undefined);
  return {
    namespace,
    upload: !own.noUpload,
    appendOnly: daemon.appendOnly || own.appendOnly,
    download: own.download ?? daemon.allowDownload,
    maxFileBytes: limits.length === 0 ? undefined : Math.min(...limits),
  };
}
