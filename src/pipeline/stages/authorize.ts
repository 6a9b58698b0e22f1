/**
 * authorize: model access for the caller's group (403 `model_not_allowed`, checked before any limit),
 * then the provider target that serves the model.
 */
import type { CompiledConfig, CompiledTarget } from '../../config/types.ts';
import { KtError } from '../../core/errors.ts';
import type { Identity } from '../context.ts';

export function authorize(config: CompiledConfig, identity: Identity, model: string): CompiledTarget {
  const key = identity.key;
  if (key?.allowedModels && !key.allowedModels.has(model)) {
    throw new KtError('model_not_allowed', `Model ${model} is not allowed for API key: ${key.keyId}`, { allowed_models: key.allowedModelList });
  }
  const group = identity.group;
  if (group?.allowedModels && !group.allowedModels.has(model)) {
    throw new KtError('model_not_allowed', `Model ${model} is not allowed for consumer group: ${group.name}`, {
      allowed_models: group.allowedModelList,
    });
  }
  const target = config.targetByModel.get(model) ?? config.catchAll;
  if (!target) {
    throw new KtError('model_not_found', `The model '${model}' is not served by this gateway. Served models: ${[...config.targetByModel.keys()].join(', ')}.`, {
      param: 'model',
    });
  }
  return target;
}
