#pragma once
// nodelet's entry point: parses the command line and runs the chosen command.
namespace nodelet::agent {
int runMain(int argc, char** argv);
}
