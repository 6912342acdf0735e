/** PyTorch `.pth` checkpoints: a restricted reader (zip and legacy containers) and a zip writer. */
export {
  readPth, readPthStateDict, findStateDict, isPth, PthStorage, PthTensor,
  type PthCheckpoint, type PthDtype, type PthStateDict, type ReadPthOptions, type NamedFloat32Tensor,
} from './pth.js';
export { writePth, type PthTensorInput, type WritePthOptions } from './pth-writer.js';
export {
  unpickle, ALLOWED_GLOBALS, STORAGE_CLASSES, UnsafePickleError, PthFormatError, PickleDict, PickleTuple, PickleGlobal, PickleExternal,
  type PickleValue, type PickleKey, type UnpickleHooks, type UnpickleResult,
} from './pickle.js';
