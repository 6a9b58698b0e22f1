/**
 * `kt`: argv -> command. No business logic here; each command calls into the library.
 */
import { Command, Option } from 'commander';
import { gatewayRun } from './commands/gateway-run.ts';
import { policyLint } from './commands/policy-lint.ts';
import { configReload } from './commands/config-reload.ts';
import { mockUpstream } from './commands/mock-upstream.ts';
import { eventsTail } from './commands/events-tail.ts';
import { resolveDataDir } from '../core/data-dir.ts';

const program = new Command();
program.name('kt').description('kt — an OpenAI-compatible LLM gateway with exact rate limits and quotas').showHelpAfterError();
const dataDirOption = () => new Option('--data-dir <dir>', 'state directory (events, running gateways); default $KT_DATA_DIR or ~/.kt');

const gateway = program.command('gateway').description('run the gateway');
gateway
  .command('run')
  .description('start the gateway')
  .option('--policy-config <file>', 'policy config (default ./policy-config.yaml, else the bundled quick-start config)')
  .option('--port <port>', 'port to listen on (default 41002)')
  .option('--listen <host:port>', 'address to listen on, e.g. 0.0.0.0:41002 or 127.0.0.1:8080')
  .addOption(dataDirOption())
  .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'silent']))
  .addOption(new Option('--log-format <format>', 'log format').choices(['text', 'json']))
  .action(async (o) => {
    process.exitCode = await gatewayRun(o);
  });

const policy = program.command('policy').description('work with policy configs');
policy
  .command('lint')
  .description('validate a policy config and list every problem with its line and path')
  .requiredOption('--file <file>', 'the policy config to check')
  .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
  .action(async (o) => {
    process.exitCode = await policyLint(o.file, o.format, process.stdout);
  });

const config = program.command('config').description('manage running gateways');
config
  .command('reload')
  .description('make every running gateway of this user re-read and swap in its config file')
  .addOption(dataDirOption())
  .action(async (o) => {
    process.exitCode = await configReload(resolveDataDir(o.dataDir), process.stdout, process.stderr);
  });

const events = program.command('events').description('read the event store');
events
  .command('tail')
  .description('print recent events (one per request)')
  .option('--last <n>', 'how many recent events', '20')
  .addOption(new Option('--format <format>', 'output format').choices(['table', 'json', 'jsonl']).default('table'))
  .option('--consumer-group <name>', 'only this consumer group')
  .option('--status <status>', 'only events whose result or reason matches (e.g. blocked, rate_limited, error)')
  .option('-f, --follow', 'keep printing new events as they arrive', false)
  .option('-v, --verbose', 'show every field of each event', false)
  .addOption(dataDirOption())
  .action(async (o) => {
    const last = Number(o.last);
    if (!Number.isInteger(last) || last < 0) {
      process.stderr.write(`error: --last must be a whole number (got ${o.last})\n`);
      process.exitCode = 2;
      return;
    }
    const ac = new AbortController();
    process.once('SIGINT', () => ac.abort());
    process.once('SIGTERM', () => ac.abort());
    await eventsTail({
      dataDir: resolveDataDir(o.dataDir),
      last,
      format: o.format,
      consumerGroup: o.consumerGroup,
      status: o.status,
      follow: o.follow,
      verbose: o.verbose,
      out: process.stdout,
      signal: ac.signal,
    });
  });

program
  .command('mock-upstream')
  .description('run a standalone OpenAI-compatible mock server (point a target at it with base_url)')
  .option('--port <port>', 'port (0 picks a free one)', '41080')
  .option('--host <host>', 'host', '127.0.0.1')
  .option('--completion-tokens <n>', 'default completion length', '100')
  .action(async (o) => {
    await mockUpstream({ port: Number(o.port), host: o.host, completionTokens: Number(o.completionTokens) });
  });

await program.parseAsync(process.argv);
