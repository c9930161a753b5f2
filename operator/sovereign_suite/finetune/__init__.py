"""Fine-tuning (issue 25): the LoRA trainer program a FineTune's training Job runs (``trainer``) and its pure
parts (``dataset``, ``result``, ``storage``, ``progress``). torch, transformers and peft are imported only by
``lora_train`` and ``tiny_model``, inside the trainer's environment (the ``trainer`` extra): importing this
package, or the operator, never pulls them."""
