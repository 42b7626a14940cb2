// oisp-sensor's Node.js preload (loaded with NODE_OPTIONS="--require <this file>" by `oisp-sensor run`).
//
// Why: Node's built-in fetch (undici) ignores HTTPS_PROXY before Node 24, so SDKs built
// on fetch (the openai and anthropic npm packages among them) would bypass the sensor.
// This file makes fetch honour HTTPS_PROXY/HTTP_PROXY/NO_PROXY without any npm package:
// it replaces undici's global dispatcher with an Agent of the same (bundled) class whose
// `connect` opens a CONNECT tunnel through the proxy and then starts TLS inside it, as the
// SDK would have done directly. Trust comes from NODE_EXTRA_CA_CERTS, set alongside.
//
// It changes nothing when no proxy is configured, or on a Node whose fetch already
// follows the proxy variables (NODE_USE_ENV_PROXY), and never throws at load time.
'use strict';

(function installOispProxy() {
  const env = process.env;
  const proxyUrl = env.HTTPS_PROXY || env.https_proxy || env.HTTP_PROXY || env.http_proxy;
  if (!proxyUrl || env.NODE_USE_ENV_PROXY === '1' || globalThis.__oispProxyInstalled) return;
  let proxy;
  try {
    proxy = new URL(proxyUrl);
  } catch (_) {
    return;
  }
  if (proxy.protocol !== 'http:') return;
  const net = require('net');
  const tls = require('tls');
  const proxyHost = proxy.hostname.replace(/^\[|\]$/g, '');
  const proxyPort = Number(proxy.port || 80);
  const noProxy = (env.NO_PROXY || env.no_proxy || '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);

  function bypass(host) {
    host = host.toLowerCase();
    return noProxy.some((entry) => {
      if (entry === '*') return true;
      const bare = entry.replace(/^\*?\./, '').split(':')[0];
      return host === bare || host.endsWith('.' + bare);
    });
  }

  // Open a socket to host:port through the proxy's CONNECT; `plain` asks oisp-sensor to
  // expect plaintext HTTP inside the tunnel (an http:// origin such as a local model server).
  function tunnel(host, port, plain, callback) {
    const socket = net.connect(proxyPort, proxyHost);
    let done = false;
    let buffered = Buffer.alloc(0);
    const fail = (err) => {
      if (done) return;
      done = true;
      socket.destroy();
      callback(err);
    };
    socket.once('error', fail);
    socket.once('close', () => fail(new Error('proxy closed the connection during CONNECT')));
    socket.once('connect', () => {
      const authority = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
      const hint = plain ? 'X-OISP-Tunnel: plain\r\n' : '';
      socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${hint}\r\n`);
    });
    const onData = (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buffered.length > 65536) fail(new Error('proxy answered CONNECT with a huge head'));
        return;
      }
      socket.removeListener('data', onData);
      socket.removeAllListeners('close');
      socket.removeListener('error', fail);
      const statusLine = buffered.subarray(0, buffered.indexOf('\r\n')).toString('latin1');
      const status = Number(statusLine.split(' ')[1]);
      if (status !== 200) {
        const err = new Error(`proxy refused CONNECT ${host}:${port}: ${statusLine}`);
        done = true;
        socket.destroy();
        callback(err);
        return;
      }
      if (end + 4 < buffered.length) socket.unshift(buffered.subarray(end + 4));
      done = true;
      callback(null, socket);
    };
    socket.on('data', onData);
  }

  function connector(opts, callback) {
    const https = opts.protocol === 'https:';
    const host = opts.hostname;
    const port = Number(opts.port || (https ? 443 : 80));
    const direct = bypass(host);
    const finish = (err, socket) => {
      if (err) return callback(err);
      if (!https) return callback(null, socket);
      const servername = opts.servername || (net.isIP(host) ? undefined : host);
      const secure = tls.connect({
        socket: direct ? undefined : socket,
        host,
        port,
        servername,
        ALPNProtocols: ['http/1.1'],
      });
      secure.once('secureConnect', () => {
        secure.removeListener('error', callback);
        callback(null, secure);
      });
      secure.once('error', callback);
    };
    if (direct) {
      if (https) return finish(null, undefined);
      const socket = net.connect(port, host);
      socket.once('connect', () => callback(null, socket));
      socket.once('error', callback);
      return;
    }
    tunnel(host, port, !https, finish);
  }

  // Node's own https module (https.request/get without an explicit agent, node-fetch
  // based SDKs that use the default agent): a default Agent whose connections are
  // CONNECT tunnels too. Agents a library builds itself are left alone.
  try {
    const https = require('https');
    class OispTunnelAgent extends https.Agent {
      createConnection(options, callback) {
        const host = options.host || options.hostname || 'localhost';
        const port = Number(options.port || 443);
        if (bypass(host)) return super.createConnection(options, callback);
        tunnel(host, port, false, (err, socket) => {
          if (err) return callback(err);
          const servername = options.servername || (net.isIP(host) ? undefined : host);
          callback(null, tls.connect({ ...options, socket, servername }));
        });
        return undefined;
      }
    }
    https.globalAgent = new OispTunnelAgent({ keepAlive: true });
  } catch (err) {
    if (env.OISP_DEBUG) process.stderr.write(`oisp-sensor preload: https agent: ${err}\n`);
  }

  try {
    // Touching a fetch class loads Node's bundled undici, which installs its global Agent.
    void globalThis.Response;
    const key = Symbol.for('undici.globalDispatcher.1');
    const current = globalThis[key];
    if (!current || typeof current.constructor !== 'function') return;
    const Agent = current.constructor;
    globalThis[key] = new Agent({ connect: connector });
    globalThis.__oispProxyInstalled = true;
  } catch (err) {
    if (env.OISP_DEBUG) process.stderr.write(`oisp-sensor preload: not installed: ${err}\n`);
  }
})();
