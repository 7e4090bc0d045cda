// nodelet's executable: a one-file shim over agent::App.
#include <malloc.h>

#include "agent/app.h"

int main(int argc, char** argv) {
  // nodelet's threads mostly wait; a malloc arena per thread would only cost resident memory.
  mallopt(M_ARENA_MAX, 2);
  return nodelet::agent::runMain(argc, argv);
}
