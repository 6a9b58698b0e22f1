/** One adapter per provider kind, living as long as the gateway (pools survive reloads). */
import type { CompiledTarget } from '../config/types.ts';
import type { ProviderAdapter } from './types.ts';
import { MockProvider } from './mock/mock-provider.ts';
import { OpenAIProvider } from './openai/openai-provider.ts';
import type { Clock } from '../core/clock.ts';

export class Providers {
  private readonly mock: MockProvider;
  private readonly openai = new OpenAIProvider();
  constructor(clock: Clock) {
    this.mock = new MockProvider(clock);
  }
  for(target: CompiledTarget): ProviderAdapter {
    return target.provider === 'mock' ? this.mock : this.openai;
  }
  async close(): Promise<void> {
    await Promise.all([this.mock.close(), this.openai.close()]);
  }
}
