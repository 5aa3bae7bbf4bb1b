"""Fine-tuning: recipes, DeepSpeed/accelerate glue, data collation, the training loop.

A stage beside :mod:`llm.export`, :mod:`eval` and :mod:`serving`: it builds on
the shared model code (:mod:`llm.models`: loading, chat tokenization) and the
data layer, and none of the other stages imports it.

* :mod:`llm.train.recipe` (with :mod:`~llm.train.recipe_checks`): the recipe
  schema and :func:`~llm.train.recipe.load_recipe` (defaults < YAML < ``--set``).
* :mod:`llm.train.distributed`: launch configs and the world-size guard;
  :mod:`llm.train.deepspeed_config`: DeepSpeed ``"auto"`` values from a recipe.
* :mod:`llm.train.dry_run`: parameter counts and memory estimates without weights.
* :mod:`llm.train.datasets`, :mod:`~llm.train.tokenize`, :mod:`~llm.train.packing`,
  :mod:`~llm.train.multimodal`: task splits to tokenized, packed batches.
* :mod:`llm.train.model_setup`, :mod:`~llm.train.attention`, :mod:`~llm.train.loss`:
  the model, its adapters, packed attention and the loss on target tokens only.
* :mod:`llm.train.trainer`: :func:`~llm.train.trainer.run_training`, the one
  training path (with :mod:`~llm.train.callbacks`, :mod:`~llm.train.tracking`,
  :mod:`~llm.train.safe_resume`); it returns a
  :class:`~llm.train.result.TrainingResult`, which :mod:`~llm.train.run_manifest` records.

Nothing is re-exported here: import from the module that defines a name, so
that ``import llm.train.recipe`` never pulls in torch.
"""
