#ifndef LAYERS_LOW_LOW_H_
#define LAYERS_LOW_LOW_H_
int Low();
#endif  // LAYERS_LOW_LOW_H_
