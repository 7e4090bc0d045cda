// nodelet's executable: a one-file shim over agent::App.
#include "agent/app.h"

int main(int argc, char** argv) { return nodelet::agent::runMain(argc, argv); }
