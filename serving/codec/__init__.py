"""Request and response bodies to arrays and back: JSON tensors, TensorProto, tf.Example, original
column names, images."""
